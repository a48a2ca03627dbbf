// The memories side panel of a conversation: search (ranked by the server), add, pin/unpin,
// edit, delete, and "Compress now". `base` is `/api/characters/{id}/chat` or `/api/groups/{id}`.

import { api } from "./api.js";
import { field, formatTime, h, replace, uid } from "./dom.js";
import { busy, confirmDialog, errorLine, notify, showError } from "./ui.js";

const KIND = { long_term: "Long-term", short_term: "Short-term" };

function importanceSelect(label, value = 3) {
  return h(
    "select",
    { "aria-label": label },
    [1, 2, 3, 4, 5].map((n) => h("option", { value: String(n), text: `${n}${n === 1 ? " (low)" : n === 5 ? " (high)" : ""}`, selected: n === value })),
  );
}

/**
 * `query()` adds e.g. `character_id=` to reads; `owner()` is the body fields a new memory needs
 * (a group's memory names its member), or throws an Error saying what to choose first;
 * `whose(memory)` names whose memory it is (in a group), or null.
 */
export function memoryPanel(base, { title = "Memories", extra = null, query = () => "", owner = () => ({}), whose = () => null, canCompress = true } = {}) {
  const list = h("ol", { class: "memory-list", "aria-label": "Memories" });
  const error = errorLine();
  const searchBox = h("input", { type: "search", name: "memory-search", maxlength: 2000, autocomplete: "off", placeholder: "e.g. lighthouse, 灯塔" });
  const searchButton = h("button", { type: "submit", class: "secondary small", text: "Search" });
  const searchForm = h("form", { class: "memory-search", role: "search" }, field("Search memories", searchBox), h("div", { class: "actions" }, searchButton));
  const summary = h("p", { class: "hint", role: "status" });
  const refresh = h("button", { type: "button", class: "secondary small", text: "Refresh" });
  const compress = canCompress ? h("button", { type: "button", class: "secondary small", title: "Summarise older messages into memories now", text: "Compress now" }) : null;
  const close = h("button", { type: "button", class: "icon-button", "aria-label": "Close memories", text: "×" });

  const newContent = h("textarea", { name: "memory-content", rows: 3, maxlength: 2000, required: true });
  const newImportance = importanceSelect("Importance of the new memory");
  const newPinned = h("input", { type: "checkbox", id: uid("memory-pinned") });
  const addButton = h("button", { type: "submit", class: "primary small", text: "Add memory" });
  const addForm = h(
    "form",
    { class: "memory-add" },
    field("New memory", newContent, "Something the character should remember. Compression never rewrites what you write."),
    h("div", { class: "field-row compact" }, field("Importance", newImportance), h("div", { class: "check" }, newPinned, h("label", { for: newPinned.id, text: "Pinned (always in the prompt)" }))),
    h("div", { class: "actions" }, addButton),
  );
  const adder = h("details", { class: "memory-adder" }, h("summary", { text: "Add a memory" }), addForm);

  const panel = h(
    "aside",
    { class: "side-panel", "aria-label": title, hidden: true },
    h("div", { class: "side-head" }, h("h2", { text: title }), close),
    extra,
    h("p", { class: "hint", text: "What the character remembers of this conversation: older messages are summarised in the background. Pinned memories are in every prompt." }),
    searchForm,
    h("div", { class: "actions" }, refresh, compress),
    adder,
    error,
    summary,
    list,
  );

  let shown = 0;
  let searched = "";

  const fail = (exc) => showError(exc, error);

  async function change(memory, fields, button) {
    error.hidden = true;
    try {
      await busy(button, null, () => api("PATCH", `${base}/memories/${encodeURIComponent(memory.id)}`, fields));
      await load();
      // keep the keyboard where it was: on the same memory
      [...list.querySelectorAll(".memory")].find((node) => node.dataset.id === String(memory.id))?.querySelector("button")?.focus();
      return true;
    } catch (exc) {
      fail(exc);
      return false;
    }
  }

  function editor(memory, item, view) {
    const content = h("textarea", { rows: 4, maxlength: 2000, required: true, value: memory.content, "aria-label": "Edit memory" });
    const importance = importanceSelect("Importance", memory.importance || 3);
    const save = h("button", { type: "submit", class: "primary small", text: "Save" });
    const cancel = h("button", { type: "button", class: "secondary small", text: "Cancel" });
    const form = h("form", { class: "memory-edit" }, content, field("Importance", importance), h("div", { class: "actions" }, cancel, save));
    const back = () => {
      form.replaceWith(view);
      view.querySelector("button")?.focus();
    };
    cancel.addEventListener("click", back);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") back();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = {};
      if (content.value !== memory.content) fields.content = content.value;
      if (Number(importance.value) !== memory.importance) fields.importance = Number(importance.value);
      if (!Object.keys(fields).length) return back();
      await change(memory, fields, save);
    });
    view.replaceWith(form);
    content.focus();
  }

  function memoryNode(memory, rank) {
    const pin = h("button", {
      type: "button",
      class: "secondary small",
      "aria-pressed": String(Boolean(memory.pinned)),
      "aria-label": memory.pinned ? "Unpin this memory" : "Pin this memory",
      text: memory.pinned ? "Unpin" : "Pin",
    });
    const edit = h("button", { type: "button", class: "secondary small", "aria-label": "Edit this memory", text: "Edit" });
    const remove = h("button", { type: "button", class: "secondary small", "aria-label": "Delete this memory", text: "Delete" });
    const view = h(
      "div",
      { class: "memory-view" },
      h("p", { class: "memory-text", text: memory.content }),
      h("div", { class: "actions" }, pin, edit, remove),
    );
    const item = h(
      "li",
      { class: `memory${memory.pinned ? " pinned" : ""}`, dataset: { id: memory.id } },
      h(
        "div",
        { class: "meta" },
        rank ? h("span", { class: "rank", text: `#${rank}` }) : null,
        whose(memory) ? h("span", { class: "badge badge-whose", text: whose(memory) }) : null,
        h("span", { class: `badge badge-${memory.kind}`, text: KIND[memory.kind] || memory.kind }),
        memory.pinned ? h("span", { class: "badge badge-pinned", text: "Pinned" }) : null,
        memory.origin === "user" ? h("span", { class: "badge", text: "Yours" }) : null,
        memory.importance ? h("span", { class: "importance", text: `importance ${memory.importance}` }) : null,
        h("time", { datetime: memory.created_at, text: formatTime(memory.created_at) }),
        memory.edited_at ? h("span", { class: "muted", text: "edited" }) : null,
      ),
      view,
    );
    pin.addEventListener("click", () => change(memory, { pinned: !memory.pinned }, pin));
    edit.addEventListener("click", () => editor(memory, item, view));
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog("Delete this memory?", "The character forgets it for good."))) return;
      error.hidden = true;
      try {
        await api("DELETE", `${base}/memories/${encodeURIComponent(memory.id)}`);
        await load();
      } catch (exc) {
        fail(exc);
      }
    });
    return item;
  }

  async function load() {
    try {
      const params = new URLSearchParams(query());
      if (searched) params.set("q", searched);
      const text = params.toString();
      const { items } = await api("GET", `${base}/memories${text ? `?${text}` : ""}`);
      shown = items.length;
      replace(list);
      summary.textContent = searched
        ? `${items.length} ${items.length === 1 ? "memory" : "memories"} for “${searched}”, most relevant first.`
        : items.length
          ? "Newest first."
          : "";
      if (!items.length) {
        list.append(h("li", { class: "muted", text: searched ? "No memory matches." : "No memories yet. They appear once the conversation grows." }));
      }
      items.forEach((memory, i) => list.append(memoryNode(memory, searched ? i + 1 : null)));
    } catch (exc) {
      fail(exc);
    }
    return shown;
  }

  /** After "Compress now": look again every 1.5 s (up to 30 s) until new memories show. */
  async function watch() {
    const before = shown;
    for (let i = 0; i < 20; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      if (panel.hidden || !panel.isConnected) return;
      if ((await load()) > before) return;
    }
  }

  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    searched = searchBox.value.trim();
    error.hidden = true;
    load();
  });
  searchBox.addEventListener("search", () => {
    // the clear (×) of a search box: back to newest first
    if (!searchBox.value && searched) {
      searched = "";
      load();
    }
  });
  refresh.addEventListener("click", load);
  compress?.addEventListener("click", async () => {
    try {
      const { queued } = await busy(compress, "Queued…", () => api("POST", `${base}/compress`));
      notify(queued ? "Compressing older messages into memories…" : "Nothing to compress yet.");
      if (queued) watch();
    } catch (exc) {
      showError(exc);
    }
  });
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const body = { ...owner(), content: newContent.value, importance: Number(newImportance.value), pinned: newPinned.checked };
      await busy(addButton, "Adding…", () => api("POST", `${base}/memories`, body));
      newContent.value = "";
      newPinned.checked = false;
      await load();
    } catch (exc) {
      fail(exc);
    }
  });

  return {
    panel,
    load,
    isOpen: () => !panel.hidden,
    toggle(button) {
      panel.hidden = !panel.hidden;
      button.setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) {
        load();
        close.focus();
      }
    },
    onClose(handler) {
      close.addEventListener("click", handler);
    },
  };
}
