// DOM helpers. Text is only ever inserted as text nodes: nothing here parses HTML.

/** Create an element. Props: class, text, value, checked, disabled, dataset, on<event>, or attributes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") el[key] = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "innerHTML" || key === "outerHTML") throw new Error("HTML is never inserted");
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children: nodes as they are, strings and numbers as text nodes, arrays flattened. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A short, stable label for a timestamp. */
export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

let idCounter = 0;
/** A unique element id for label/control pairs. */
export function uid(prefix = "f") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field: the label names the control for assistive technology. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const hintEl = hint ? h("p", { class: "hint", id: `${control.id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id, text: label }), control, hintEl);
}

/** Initials for an avatar placeholder (works for CJK names too). */
export function initials(name) {
  const trimmed = (name || "?").trim();
  const words = trimmed.split(/\s+/).filter(Boolean);
  if (words.length >= 2 && /^[A-Za-z]/.test(words[0])) return (words[0][0] + words[1][0]).toUpperCase();
  return Array.from(trimmed)[0]?.toUpperCase() || "?";
}

/** An avatar: the character's image when it has one, else its initials on a colour from its id. */
export function avatar(character, size = "md") {
  const name = character?.name || "?";
  if (character?.avatar_url) {
    return h("img", { class: `avatar avatar-${size}`, src: character.avatar_url, alt: "" });
  }
  let hash = 0;
  for (const ch of String(character?.id ?? name)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const el = h("span", { class: `avatar avatar-${size}`, "aria-hidden": "true", text: initials(name) });
  el.style.setProperty("--hue", String(hash % 360)); // CSSOM, allowed by the page's CSP
  return el;
}
