// The delivery charts' layout (console/charts.js) without a browser: the time axis spans the whole
// window, its labels keep apart at any width, and a minute without attempts breaks the latency line.

import { test } from "node:test";
import assert from "node:assert/strict";
import { MARGIN, niceCeil, runs, timeAxis, tip } from "../crates/chathook/console/charts.js";

const MIN = 60_000;
const until = Date.UTC(2026, 11, 5, 12, 0);
const hour = until - 60 * MIN;

test("the y axis ends at a nice number at or above the largest value", () => {
  assert.deepEqual([0, 1, 3, 7, 10, 11, 180, 2001].map(niceCeil), [1, 1, 5, 10, 10, 20, 200, 5000]);
});

test("two minutes of data take two sixtieths of the last hour, at its right end", () => {
  const width = 1000;
  const axis = timeAxis(hour, until, width, 0);
  const plotEnd = MARGIN.left + axis.plot;
  assert.equal(axis.x(hour), MARGIN.left);
  assert.equal(axis.x(until), plotEnd);
  const first = axis.x(until - 2 * MIN);
  assert.ok(Math.abs(plotEnd - first - 2 * axis.minuteWidth) < 1e-6);
  assert.ok(first > MARGIN.left + axis.plot * 0.95, "recent minutes sit at the right");
});

test("time labels fall on whole steps of the local clock and keep 60 px apart, wide and at 390 px", () => {
  for (const [width, window] of [[1200, 60], [390, 60], [390, 360], [800, 1440]]) {
    const from = until - window * MIN;
    for (const tz of [0, -60, 330]) {
      const axis = timeAxis(from, until, width, tz);
      assert.ok(axis.ticks.length >= 2, `${width} px, ${window} min: ${axis.ticks.length} labels`);
      const xs = axis.ticks.map(axis.x);
      for (let i = 1; i < xs.length; i++) assert.ok(xs[i] - xs[i - 1] >= 60, `${width} px: labels ${xs[i] - xs[i - 1]} px apart`);
      for (const x of xs) assert.ok(x >= MARGIN.left && x <= width - MARGIN.right);
      const step = axis.ticks[1] - axis.ticks[0];
      for (const t of axis.ticks) assert.equal((t - tz * MIN) % step, 0, "aligned to the local clock");
    }
  }
});

test("a minute without attempts splits the latency line into runs", () => {
  const m = (t, p50, p99) => ({ t: hour + t * MIN, success: 1, failure: 0, latency_ms: { p50, p99 } });
  const minutes = [m(0, 5, 9), m(1, 6, 12), m(3, 4, 8), m(4, null, null), m(5, 7, 7)];
  assert.deepEqual(runs(minutes, "p50").map((r) => r.map((p) => (p.t - hour) / MIN)), [[0, 1], [3], [5]]);
});

test("a minute's tooltip names its counts and both latencies", () => {
  const text = tip({ t: hour, success: 3, failure: 1, latency_ms: { p50: 12, p99: 40 } });
  assert.match(text, /^\d{1,2}:\d\d( [AP]M)?: 3 succeeded, 1 failed · p50 12 ms · p99 40 ms$/);
});
