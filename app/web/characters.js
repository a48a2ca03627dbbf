// Characters: the list, generating or creating one, viewing and editing a profile.

import { api, stream } from "./api.js";
import { avatar, field, formatTime, h, replace } from "./dom.js";
import { CATEGORIES, LIST_FIELDS, busy, categoryDetails, confirmDialog, emptyState, errorLine, fieldLabel, notify, pageHeader, showError } from "./ui.js";

function statusBadge(character) {
  return character.status === "ready"
    ? h("span", { class: "badge badge-ok", text: "Ready" })
    : h("span", { class: "badge badge-warn", title: "Some profile categories are empty", text: "Partial" });
}

function summary(character) {
  const identity = character.profile?.identity || {};
  return identity.occupation || identity.background || (character.status === "partial" ? "Profile not complete yet." : "");
}

export async function characterListView(main, _params, { navigate }) {
  const { items } = await api("GET", "/api/characters");
  const newButton = h("a", { href: "#/characters/new", class: "button primary", text: "New character" });
  main.append(pageHeader("Characters", [newButton], "Pick someone to talk to, or make someone new."));
  if (!items.length) {
    main.append(emptyState("No characters yet", "Generate one from a name (and, if you like, a few paragraphs about them).", h("a", { href: "#/characters/new", class: "button primary", text: "Generate a character" })));
    return;
  }
  const list = h("ul", { class: "card-grid", "aria-label": "Your characters" });
  for (const character of items) {
    list.append(
      h(
        "li",
        { class: "card character-card", dataset: { characterId: character.id } },
        h("div", { class: "card-head" }, avatar(character), h("div", { class: "card-title" }, h("h2", { text: character.name }), statusBadge(character))),
        h("p", { class: "card-text", text: summary(character) }),
        h(
          "div",
          { class: "actions" },
          h("a", { href: `#/chat/${encodeURIComponent(character.id)}`, class: "button primary small", "aria-label": `Chat with ${character.name}`, text: "Chat" }),
          h("a", { href: `#/characters/${encodeURIComponent(character.id)}`, class: "button secondary small", "aria-label": `Profile of ${character.name}`, text: "Profile" }),
        ),
      ),
    );
  }
  main.append(list);
  void navigate;
}

/** Eight placeholders that fill as `category` events arrive. */
function categoryBoard() {
  const cells = new Map();
  const board = h("ol", { class: "category-board", "aria-label": "Profile categories" });
  for (const [key, label] of CATEGORIES) {
    const status = h("span", { class: "category-status", text: "Waiting…" });
    const body = h("div", { class: "category-body" });
    const cell = h("li", { class: "category pending", dataset: { category: key } }, h("div", { class: "category-head" }, h("h3", { text: label }), status), body);
    cells.set(key, { cell, status, body });
    board.append(cell);
  }
  return {
    board,
    start() {
      for (const { cell, status } of cells.values()) {
        cell.className = "category running";
        status.textContent = "Writing…";
      }
    },
    fill(event) {
      const entry = cells.get(event.category);
      if (!entry) return;
      if (event.status === "ok") {
        entry.cell.className = "category ok";
        entry.status.textContent = "Done";
        replace(entry.body, categoryDetails(event.data, event.category));
      } else {
        entry.cell.className = "category failed";
        entry.status.textContent = "Failed";
        replace(entry.body, h("p", { class: "muted", text: typeof event.error === "string" ? event.error : "This category could not be generated." }));
      }
    },
  };
}

export async function generateView(main, _params, { navigate }) {
  const name = h("input", { name: "name", required: true, maxlength: 100, autocomplete: "off" });
  const source = h("textarea", { name: "source_text", rows: 5, maxlength: 20000 });
  const generate = h("button", { type: "submit", class: "primary", text: "Generate" });
  const createOnly = h("button", { type: "button", class: "secondary", text: "Create empty" });
  const error = errorLine();
  const result = h("div", { class: "generate-result", "aria-live": "polite" });
  const board = categoryBoard();
  const controller = new AbortController();

  const form = h(
    "form",
    { class: "panel generate-form" },
    field("Name", name, "Anyone: a historical figure, a character from a novel, or someone you invent. 中文名字也可以。"),
    field("Source text (optional)", source, "Paste what the character should be based on: a biography, a description, a scene."),
    error,
    h("div", { class: "actions" }, createOnly, generate),
  );
  main.append(pageHeader("New character", [], "All eight profile categories are written at the same time; watch them arrive."), form, board.board, result);

  createOnly.addEventListener("click", async () => {
    error.hidden = true;
    if (!name.value.trim()) {
      showError({ message: "Enter a name first." }, error);
      name.focus();
      return;
    }
    try {
      const character = await busy(createOnly, "Creating…", () => api("POST", "/api/characters", { name: name.value.trim() }));
      navigate(`#/characters/${encodeURIComponent(character.id)}`);
    } catch (exc) {
      showError(exc, error);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (!name.value.trim()) {
      showError({ message: "Enter a name first." }, error);
      name.focus();
      return;
    }
    const body = { name: name.value.trim() };
    if (source.value.trim()) body.source_text = source.value;
    board.start();
    replace(result);
    let character = null;
    try {
      await busy(generate, "Generating…", () =>
        stream("POST", "/api/characters/generate", body, (kind, data) => {
          if (kind === "category") board.fill(data);
          else if (kind === "character") character = data;
        }, { signal: controller.signal }),
      );
    } catch (exc) {
      const dropped = { message: "The connection dropped while generating. The character may still appear in your list in a moment." };
      showError(exc.name === "StreamDropped" ? dropped : exc, error);
    }
    if (character) {
      replace(
        result,
        h(
          "div",
          { class: "panel done-panel" },
          h("p", {}, h("strong", { text: character.name }), character.status === "ready" ? " is ready." : " was created, but some categories failed (you can regenerate them from the profile)."),
          h(
            "div",
            { class: "actions" },
            h("a", { href: `#/chat/${encodeURIComponent(character.id)}`, class: "button primary", text: `Chat with ${character.name}` }),
            h("a", { href: `#/characters/${encodeURIComponent(character.id)}`, class: "button secondary", text: "Open profile" }),
          ),
        ),
      );
      result.querySelector("a").focus();
    }
  });
  name.focus();
  return () => controller.abort();
}

function categoryEditor(key, label, fields, data) {
  const inputs = new Map();
  const names = [...new Set([...fields, ...Object.keys(data || {})])];
  const fieldset = h("fieldset", { class: "category-edit" }, h("legend", { text: label }));
  for (const name of names) {
    const value = data ? data[name] : undefined;
    const isList = Array.isArray(value) || (value === undefined && LIST_FIELDS.has(name));
    const text = isList ? (value || []).join("\n") : value === undefined || value === null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
    const input = h("textarea", { rows: isList ? 3 : 2, value: text, name: `${key}.${name}` });
    inputs.set(name, { input, isList });
    fieldset.append(field(fieldLabel(name) + (isList ? " (one per line)" : ""), input));
  }
  return {
    fieldset,
    value() {
      const result = {};
      let any = false;
      for (const [name, { input, isList }] of inputs) {
        const raw = input.value;
        if (raw.trim()) any = true;
        result[name] = isList ? raw.split("\n").map((s) => s.trim()).filter(Boolean) : raw;
      }
      return any ? result : null;
    },
  };
}

export async function characterView(main, [id], { navigate }) {
  const path = `/api/characters/${encodeURIComponent(id)}`;
  let character = await api("GET", path);
  const controller = new AbortController();

  function render() {
    replace(main);
    const chat = h("a", { href: `#/chat/${encodeURIComponent(character.id)}`, class: "button primary", text: "Chat" });
    const edit = h("button", { type: "button", class: "secondary", text: "Edit" });
    const remove = h("button", { type: "button", class: "danger-outline", text: "Delete" });
    main.append(pageHeader(character.name, [chat, edit, remove], `Created ${formatTime(character.created_at)} · updated ${formatTime(character.updated_at)}`));
    main.querySelector(".page-title").prepend(avatar(character, "lg"));
    main.querySelector(".page-title h1").after(statusBadge(character));
    edit.addEventListener("click", renderEditor);
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(`Delete ${character.name}?`, "Their chat, memories and group memberships are deleted too. This cannot be undone."))) return;
      try {
        await api("DELETE", path);
        notify(`${character.name} was deleted.`);
        navigate("#/characters");
      } catch (exc) {
        showError(exc);
      }
    });
    const board = h("ol", { class: "category-board", "aria-label": "Profile" });
    for (const [key, label] of CATEGORIES) {
      const data = character.profile?.[key];
      const regenerate = h("button", { type: "button", class: "secondary small", "aria-label": `Regenerate ${label}`, text: "Regenerate" });
      const status = h("span", { class: "category-status", text: data ? "" : "Empty" });
      const body = h("div", { class: "category-body" }, data ? categoryDetails(data, key) : h("p", { class: "muted", text: "Not written yet." }));
      const cell = h("li", { class: `category ${data ? "ok" : "pending"}`, dataset: { category: key } }, h("div", { class: "category-head" }, h("h3", { text: label }), status, regenerate), body);
      regenerate.addEventListener("click", async () => {
        cell.className = "category running";
        status.textContent = "Writing…";
        try {
          await busy(regenerate, "…", () =>
            stream("POST", `${path}/generate/${key}`, {}, (kind, event) => {
              if (kind === "character") character = event;
              if (kind === "category") {
                status.textContent = event.status === "ok" ? "Done" : "Failed";
                cell.className = `category ${event.status === "ok" ? "ok" : "failed"}`;
                replace(body, event.status === "ok" ? categoryDetails(event.data, key) : h("p", { class: "muted", text: String(event.error || "Failed.") }));
              }
            }, { signal: controller.signal }),
          );
        } catch (exc) {
          cell.className = `category ${character.profile?.[key] ? "ok" : "pending"}`;
          status.textContent = "";
          showError(exc);
        }
      });
      board.append(cell);
    }
    main.append(board);
  }

  function renderEditor() {
    replace(main);
    const name = h("input", { name: "name", required: true, value: character.name, maxlength: 100 });
    const editors = CATEGORIES.map(([key, label, fields]) => [key, categoryEditor(key, label, fields, character.profile?.[key])]);
    const save = h("button", { type: "submit", class: "primary", text: "Save" });
    const cancel = h("button", { type: "button", class: "secondary", text: "Cancel", onclick: render });
    const error = errorLine();
    const form = h("form", { class: "panel edit-form" }, field("Character name", name), editors.map(([, e]) => e.fieldset), error, h("div", { class: "actions sticky-actions" }, cancel, save));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const profile = {};
      for (const [key, editor] of editors) {
        const value = editor.value();
        if (value) profile[key] = value;
      }
      try {
        character = await busy(save, "Saving…", () => api("PATCH", path, { name: name.value.trim(), profile }));
        notify("Saved.");
        render();
      } catch (exc) {
        showError(exc, error);
      }
    });
    main.append(pageHeader(`Edit ${character.name}`), form);
    name.focus();
  }

  render();
  return () => controller.abort();
}
