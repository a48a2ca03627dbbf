// The persona: who the characters are talking to. Its name fills {{user}} and labels your
// messages; its description is part of every prompt.

import { api } from "./api.js";
import { field, h } from "./dom.js";
import { busy, errorLine, notify, pageHeader, showError } from "./ui.js";

/** The name your messages go by: the persona's name, else the username. */
export async function speakerName(user) {
  try {
    const persona = await api("GET", "/api/me/persona");
    return persona.name || user.username;
  } catch {
    return user.username; // the conversation still works without it
  }
}

export async function personaView(main, _params, { user }) {
  const persona = await api("GET", "/api/me/persona");
  const name = h("input", { name: "persona-name", maxlength: 64, autocomplete: "off", value: persona.name || "", placeholder: user.username });
  const description = h("textarea", { name: "persona-description", rows: 6, maxlength: 2000, value: persona.description || "" });
  const count = h("p", { class: "hint counter", "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary", text: "Save persona" });
  const error = errorLine();
  const current = h("p", { class: "persona-current", role: "status" });
  const showCurrent = (p) => {
    current.textContent = p.name ? `Characters talk to ${p.name}.` : `No persona name yet: characters talk to ${user.username}.`;
  };
  const showCount = () => {
    count.textContent = `${description.value.length} / 2000`;
  };
  description.addEventListener("input", showCount);
  showCount();
  showCurrent(persona);

  const form = h(
    "form",
    { class: "panel persona-form", "aria-labelledby": "persona-form-title" },
    h("h2", { id: "persona-form-title", text: "Who you are" }),
    current,
    field("Persona name", name, "Fills {{user}} in characters' texts and labels your messages. Empty: your username."),
    field("Description", description, "Who the characters are talking to; part of every prompt."),
    count,
    error,
    h("div", { class: "actions" }, save),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const saved = await busy(save, "Saving…", () => api("PUT", "/api/me/persona", { name: name.value.trim() || null, description: description.value }));
      name.value = saved.name || "";
      description.value = saved.description || "";
      showCount();
      showCurrent(saved);
      notify("Persona saved.");
    } catch (exc) {
      showError(exc, error);
    }
  });
  main.append(pageHeader("Persona", [], "Who the characters think they are talking to, in every chat and group."), form);
  name.focus();
}
