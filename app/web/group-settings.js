// Steering a group: its name, members, strategy, how many answer, who is muted, how talkative
// each member is, and whether a character may answer itself (PATCH /api/groups/{id}).

import { api } from "./api.js";
import { avatar, field, h, uid } from "./dom.js";
import { busy, errorLine, notify, showError } from "./ui.js";

export const STRATEGIES = {
  moderator: "Moderator picks who answers",
  round_robin: "Take turns",
  all: "Everyone answers",
  natural: "Natural (talkativeness)",
  pooled: "Pooled",
  manual: "Manual",
};

function checkbox(value, label, checked, extra = null) {
  const box = h("input", { type: "checkbox", value, id: uid("gs"), checked });
  return { box, node: h("div", { class: "check member" }, box, h("label", { for: box.id }, extra, h("span", { text: label }))) };
}

/**
 * The settings side panel of `group`; `characters` are all of the user's characters.
 * `onSaved(group)` runs after a successful save.
 */
export function groupSettingsPanel(group, characters, { onSaved }) {
  const byId = new Map(characters.map((c) => [String(c.id), c]));
  const memberIds = group.character_ids.map(String);
  const mutedIds = new Set((group.muted_character_ids || []).map(String));
  const talk = group.talkativeness || {};

  const name = h("input", { name: "group-name", required: true, maxlength: 100, autocomplete: "off", value: group.name });
  const strategy = h("select", { name: "strategy" }, Object.entries(STRATEGIES).map(([value, text]) => h("option", { value, text, selected: value === group.strategy })));
  const maxSpeakers = h("input", { name: "max_speakers", type: "number", min: 1, max: 8, value: String(group.max_speakers), inputmode: "numeric" });
  const selfResponses = checkbox("yes", "A character may answer right after itself", Boolean(group.allow_self_responses));

  const members = h("fieldset", { class: "member-picker" }, h("legend", { text: "Members (2 to 8)" }));
  const memberBoxes = characters.map((c) => {
    const item = checkbox(String(c.id), c.name, memberIds.includes(String(c.id)), avatar(c, "xs"));
    members.append(item.node);
    return item.box;
  });

  const muted = h("fieldset", { class: "muted-picker" }, h("legend", { text: "Muted (never chosen, still members)" }));
  const mutedBoxes = memberIds.map((cid) => {
    const item = checkbox(cid, `Mute ${(byId.get(cid) || { name: "Unknown" }).name}`, mutedIds.has(cid));
    muted.append(item.node);
    return item.box;
  });

  const talkativeness = h("fieldset", { class: "talk-picker" }, h("legend", { text: "Talkativeness (natural strategy)" }));
  const sliders = memberIds.map((cid) => {
    const value = talk[cid] ?? 0.5;
    const slider = h("input", { type: "range", min: 0, max: 1, step: 0.05, value: String(value), dataset: { id: cid } });
    const shown = h("output", { text: Number(value).toFixed(2) });
    slider.addEventListener("input", () => {
      shown.textContent = Number(slider.value).toFixed(2);
    });
    talkativeness.append(h("div", { class: "talk-row" }, field(`Talkativeness of ${(byId.get(cid) || { name: "Unknown" }).name}`, slider), shown));
    shown.setAttribute("for", slider.id);
    return slider;
  });

  const save = h("button", { type: "submit", class: "primary small", text: "Save settings" });
  const error = errorLine();
  const close = h("button", { type: "button", class: "icon-button", "aria-label": "Close group settings", text: "×" });
  const form = h(
    "form",
    { class: "group-settings" },
    field("Group name", name),
    members,
    field("Who answers", strategy),
    field("At most this many answer each turn", maxSpeakers),
    muted,
    talkativeness,
    selfResponses.node,
    error,
    h("div", { class: "actions" }, save),
  );
  const panel = h("aside", { class: "side-panel", "aria-label": "Group settings", hidden: true }, h("div", { class: "side-head" }, h("h2", { text: "Group settings" }), close), form);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const ids = memberBoxes.filter((b) => b.checked).map((b) => b.value);
    if (!name.value.trim()) return showError({ message: "Give the group a name." }, error);
    if (ids.length < 2 || ids.length > 8) return showError({ message: "Choose between 2 and 8 members." }, error);
    const speakers = Number.parseInt(maxSpeakers.value, 10);
    const kept = new Set(ids);
    const body = {
      name: name.value.trim(),
      character_ids: ids,
      strategy: strategy.value,
      max_speakers: Number.isFinite(speakers) ? speakers : group.max_speakers,
      muted_character_ids: mutedBoxes.filter((b) => b.checked && kept.has(b.value)).map((b) => b.value),
      talkativeness: Object.fromEntries(sliders.filter((s) => kept.has(s.dataset.id)).map((s) => [s.dataset.id, Number(s.value)])),
      allow_self_responses: selfResponses.box.checked,
    };
    try {
      const saved = await busy(save, "Saving…", () => api("PATCH", `/api/groups/${encodeURIComponent(group.id)}`, body));
      notify("Group settings saved.");
      onSaved(saved);
    } catch (exc) {
      showError(exc, error);
    }
  });

  return {
    panel,
    isOpen: () => !panel.hidden,
    toggle(button) {
      panel.hidden = !panel.hidden;
      button.setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) name.focus();
    },
    onClose(handler) {
      close.addEventListener("click", handler);
    },
  };
}
