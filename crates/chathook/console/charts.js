// An endpoint's delivery charts over a window: attempts per minute by outcome (stacked bars) and
// latency per minute (p50 and p99 lines), on a real time axis from the window's start to its end
// (minutes without attempts are gaps, not squeezed out). Drawn at the element's pixel size, so text
// and dots are never stretched, and redrawn when that width changes. The layout functions are pure
// (exported for the unit tests); only `deliveryCharts` touches the page.

import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const MINUTE = 60_000;
/** The plot's height and the room around it for the axes' labels, in pixels. */
export const HEIGHT = 190;
export const MARGIN = { top: 10, right: 12, bottom: 24, left: 58 };
/** The least room between two time labels, in pixels. */
const LABEL_GAP = 60;
/** Tick steps of the time axis, in minutes; the smallest that leaves LABEL_GAP between labels wins. */
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440, 2880, 10080];

/** The least "nice" number (1, 2 or 5 times a power of ten) at or above `x` (at least 1). */
export function niceCeil(x) {
  if (!(x > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** The time axis: pixel x of a time, and the ticks (local clock, aligned to the step). */
export function timeAxis(fromMs, untilMs, width, tzOffsetMin = new Date(fromMs).getTimezoneOffset()) {
  const plot = Math.max(width - MARGIN.left - MARGIN.right, 10);
  const span = Math.max(untilMs - fromMs, MINUTE);
  const x = (t) => MARGIN.left + ((t - fromMs) / span) * plot;
  const step = (STEPS.find((s) => ((s * MINUTE) / span) * plot >= LABEL_GAP) ?? STEPS[STEPS.length - 1]) * MINUTE;
  const offset = tzOffsetMin * MINUTE;
  const ticks = [];
  for (let t = Math.ceil((fromMs - offset) / step) * step + offset; t <= untilMs; t += step) ticks.push(t);
  return { x, plot, ticks, minuteWidth: (MINUTE / span) * plot };
}

/** Runs of consecutive minutes that have a value for `key` (a line is drawn along each run; a gap
 * between runs is a minute without attempts). */
export function runs(minutes, key) {
  const out = [];
  let run = [];
  let last = null;
  for (const m of minutes) {
    const v = m.latency_ms[key];
    if (v === null || v === undefined) continue;
    if (last !== null && m.t - last !== MINUTE) {
      out.push(run);
      run = [];
    }
    run.push({ t: m.t, v });
    last = m.t;
  }
  if (run.length) out.push(run);
  return out;
}

/** A minute's tooltip: its time, counts and latencies. */
export function tip(m) {
  const at = new Date(m.t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const p50 = m.latency_ms.p50 ?? "–";
  const p99 = m.latency_ms.p99 ?? "–";
  return `${at}: ${m.success} succeeded, ${m.failure} failed · p50 ${p50} ms · p99 ${p99} ms`;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** An empty chart of `width` pixels: the y ticks (0, half, max, with `unit`), the time ticks and grid. */
function frame(label, width, axis, max, unit) {
  const bottom = MARGIN.top + HEIGHT;
  const y = (v) => bottom - (v / max) * HEIGHT;
  const el = svg("svg", { width, height: bottom + MARGIN.bottom, viewBox: `0 0 ${width} ${bottom + MARGIN.bottom}`, class: "chart", role: "img", "aria-label": label });
  for (const v of [0, max / 2, max]) {
    el.append(
      svg("line", { x1: MARGIN.left, x2: MARGIN.left + axis.plot, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: MARGIN.left - 6, y: y(v) + 4, "text-anchor": "end", class: "y-tick" }, `${+v.toFixed(1)}${unit}`),
    );
  }
  for (const t of axis.ticks) {
    const at = new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    el.append(
      svg("line", { x1: axis.x(t), x2: axis.x(t), y1: MARGIN.top, y2: bottom + 4, class: "grid" }),
      svg("text", { x: axis.x(t), y: bottom + 17, "text-anchor": "middle", class: "x-tick" }, at),
    );
  }
  return { el, y };
}

/** Transparent columns over the minutes with attempts: hovering, tapping or focusing one shows its tip. */
function hoverColumns(el, minutes, axis, show) {
  const w = Math.max(axis.minuteWidth, 6);
  for (const m of minutes) {
    const col = svg("rect", { x: axis.x(m.t) + axis.minuteWidth / 2 - w / 2, y: MARGIN.top, width: w, height: HEIGHT, class: "minute", tabindex: 0 }, svg("title", {}, tip(m)));
    for (const ev of ["pointerenter", "click", "focus"]) col.addEventListener(ev, () => show(m));
    el.append(col);
  }
}

function outcomeChart(minutes, axis, width, show) {
  // at least 2, so that the half-way tick is a whole number of attempts
  const max = niceCeil(Math.max(...minutes.map((m) => m.success + m.failure), 2));
  const { el, y } = frame("attempts per minute by outcome", width, axis, max, "/min");
  const w = Math.max(axis.minuteWidth * 0.8, 1);
  for (const m of minutes) {
    const x = axis.x(m.t) + (axis.minuteWidth - w) / 2;
    el.append(
      svg("rect", { x, y: y(m.success), width: w, height: y(0) - y(m.success), class: "bar ok" }),
      svg("rect", { x, y: y(m.success + m.failure), width: w, height: y(0) - y(m.failure), class: "bar bad" }),
    );
  }
  hoverColumns(el, minutes, axis, show);
  return el;
}

function latencyChart(minutes, axis, width, show) {
  const max = niceCeil(Math.max(...minutes.map((m) => m.latency_ms.p99 || 0), 1));
  const { el, y } = frame("latency per minute, p50 and p99", width, axis, max, " ms");
  const mid = axis.minuteWidth / 2;
  for (const key of ["p50", "p99"]) {
    for (const run of runs(minutes, key)) {
      const points = run.map((p) => `${axis.x(p.t) + mid},${y(p.v)}`).join(" ");
      el.append(svg("polyline", { points, class: `line ${key}` }));
      for (const p of run) el.append(svg("circle", { cx: axis.x(p.t) + mid, cy: y(p.v), r: 3, class: `dot ${key}` }));
    }
  }
  hoverColumns(el, minutes, axis, show);
  return el;
}

/**
 * The two charts of an endpoint's stats (`GET .../stats`), with their legends and a line that shows
 * the minute under the pointer (or tapped, or focused). Redrawn at the element's width as it changes.
 */
export function deliveryCharts(stats) {
  // whole minutes, so the first and the current minute's bars lie inside the plot
  const from = Math.floor(Date.parse(stats.since) / MINUTE) * MINUTE;
  const until = Math.ceil(Date.parse(stats.until) / MINUTE) * MINUTE;
  const minutes = stats.per_minute.map((m) => ({ ...m, t: Date.parse(m.minute) }));
  const outcome = h("div.chart-box", { id: "chart-outcome" });
  const latency = h("div.chart-box", { id: "chart-latency" });
  const tipLine = h("p.chart-tip.muted", { id: "chart-tip", role: "status", text: minutes.length ? "Point at a minute for its figures." : "No attempts in this window." });
  const show = (m) => (tipLine.textContent = tip(m));
  let drawnWidth = 0;
  const draw = () => {
    const width = Math.floor(outcome.clientWidth);
    if (!width || width === drawnWidth) return;
    drawnWidth = width;
    const axis = timeAxis(from, until, width);
    outcome.replaceChildren(outcomeChart(minutes, axis, width, show));
    latency.replaceChildren(latencyChart(minutes, axis, width, show));
  };
  new ResizeObserver(draw).observe(outcome);
  return [
    h("h3.legend", {}, "Attempts per minute: ", h("span.key.ok", { text: "succeeded" }), ", ", h("span.key.bad", { text: "failed" })),
    outcome,
    h("h3.legend", {}, "Latency per minute: ", h("span.key.p50", { text: "p50" }), ", ", h("span.key.p99", { text: "p99" }), ", in ms"),
    latency,
    tipLine,
  ];
}
