// Event activation: the feature switches some events need (Tencent's console has the same panel).

import { api } from "./api.js";
import { banner, h } from "./ui.js";

export const FEATURES = [
  ["online_status_notify", "Online status", "Users going online and offline (user.online, user.offline, State.StateChange)."],
  ["profile_change_subscription", "Profile changes", "A user's profile changed (user.profile_changed, Profile.CallbackPortraitSet)."],
  ["live_group_member_status", "Live group member status", "Members of live groups coming and going (group.member_online_status, Group.CallbackOnMemberStateChange)."],
];

export async function render(main) {
  let current = await api("GET", "/v1/features");
  const status = h("p.muted", { role: "status" });
  const list = h("div.card");
  for (const [key, title, description] of FEATURES) {
    const input = h("input", { type: "checkbox", role: "switch", id: `feature-${key}`, checked: !!current[key] });
    input.addEventListener("change", async () => {
      const next = { ...current, [key]: input.checked };
      input.disabled = true;
      try {
        current = await api("PUT", "/v1/features", next);
        status.textContent = `${title} is ${current[key] ? "on" : "off"}.`;
      } catch (e) {
        input.checked = !!current[key];
        banner.show(e.message);
      } finally {
        input.disabled = false;
      }
    });
    list.append(
      h("label.check", { for: `feature-${key}` }, input, h("span", {}, h("strong", { text: title }), h("br"), h("span.desc", { text: description }))),
    );
  }
  main.append(
    h("h1", { id: "event-activation", text: "Event activation" }),
    h("p.muted", { text: "Some events are sent only when their feature is switched on here." }),
    list,
    status,
  );
}
