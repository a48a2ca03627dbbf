// Shared page pieces: notices, confirmation, busy buttons, the profile categories.

import { h, replace } from "./dom.js";

export const CATEGORIES = [
  ["identity", "Identity", ["name", "age", "gender", "occupation", "background", "appearance", "titles"]],
  ["personality", "Personality", ["traits", "values", "emotional_style", "speech_style", "likes", "dislikes", "motivation"]],
  ["backstory", "Backstory", ["origin", "experiences", "current_situation", "relationships", "secret"]],
  ["abilities", "Abilities", ["knowledge", "skills", "limitations"]],
  ["dialogue", "Dialogue", ["tone", "language_style", "constraints", "interaction_style"]],
  ["tasks", "Tasks", ["goal", "intent", "off_limits", "triggers"]],
  ["world", "World", ["era", "setting", "social_order", "rules"]],
  ["system", "System", ["role_rules", "reply_length", "knowledge_cutoff", "safety_notes"]],
];
export const LIST_FIELDS = new Set(["experiences", "relationships"]);

/** "emotional_style" → "Emotional style". */
export function fieldLabel(key) {
  const text = key.replaceAll("_", " ");
  return text[0].toUpperCase() + text.slice(1);
}

/** The fields of one category as a definition list (values inserted as text), in API.md's order. */
export function categoryDetails(data, category) {
  const list = h("dl", { class: "category-fields" });
  const known = CATEGORIES.find(([key]) => key === category)?.[2] || [];
  const keys = [...known.filter((k) => data && k in data), ...Object.keys(data || {}).filter((k) => !known.includes(k))];
  for (const key of keys) {
    const value = data[key];
    if (value === null || value === undefined || value === "") continue;
    const shown = Array.isArray(value) ? value : [typeof value === "object" ? JSON.stringify(value) : String(value)];
    list.append(h("dt", { text: fieldLabel(key) }));
    if (Array.isArray(value)) list.append(h("dd", {}, h("ul", {}, shown.map((item) => h("li", { text: String(item) })))));
    else list.append(h("dd", { text: shown[0] }));
  }
  return list;
}

const notices = () => document.getElementById("notices");

/** A transient message at the top of the page (errors stay until dismissed). */
export function notify(message, kind = "info") {
  const close = h("button", { type: "button", class: "icon-button", "aria-label": "Dismiss", text: "×" });
  const item = h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", { text: message }), close);
  close.addEventListener("click", () => item.remove());
  notices().append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
  return item;
}

/** Show an error's human message (ApiError, StreamDropped or anything else). */
export function showError(error, where = null) {
  if (error?.name === "AbortError") return;
  const message = error?.message || "Something went wrong.";
  if (where) {
    replace(where, message);
    where.hidden = false;
  } else {
    notify(message, "error");
  }
}

/** An inline error line for a form (role=alert so it is announced). */
export function errorLine() {
  return h("p", { class: "form-error", role: "alert", hidden: true });
}

/** Run `work` with `button` disabled and showing `label` meanwhile. */
export async function busy(button, label, work) {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (label) button.textContent = label;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}

/** A modal confirmation using <dialog>; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    const yes = h("button", { type: "submit", class: "danger", value: "yes", text: confirmLabel });
    const no = h("button", { type: "submit", class: "secondary", value: "no", text: "Cancel" });
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" }, h("h2", { id: "dialog-title", text: title }), h("p", { text }), h("div", { class: "actions" }, no, yes)),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** A page header: title, optional subtitle, actions on the right. */
export function pageHeader(title, actions = [], subtitle = null) {
  return h(
    "div",
    { class: "page-header" },
    h("div", { class: "page-title" }, h("h1", { text: title }), subtitle ? h("p", { class: "subtitle", text: subtitle }) : null),
    h("div", { class: "actions" }, actions),
  );
}

/** An empty-state panel. */
export function emptyState(title, text, action = null) {
  return h("div", { class: "empty" }, h("h2", { text: title }), h("p", { text }), action);
}
