// A conversation on screen: messages, streaming replies, and the conversation-tree controls
// (alternatives ‹ 2/3 ›, edit, delete, branch, regenerate a reply) shown only when the server's
// messages carry the tree fields (`parent_id`, `sibling_index`, `sibling_count`).

import { api } from "./api.js";
import { append, avatar, formatTime, h, replace } from "./dom.js";
import { confirmDialog, showError } from "./ui.js";

const STATUS_LABELS = { interrupted: "Stopped", error: "Failed" };

/** True when the server's messages carry the conversation-tree fields. */
export function hasTree(message) {
  return Boolean(message) && "parent_id" in message && "sibling_count" in message;
}

/**
 * The list of messages of one conversation (`base` is `/api/characters/{id}/chat` or
 * `/api/groups/{id}`). `who(message)` gives the character of an assistant message.
 */
export class Conversation {
  constructor({ base, who, userName, onChanged, onRegenerate, onBranch, isBusy, lastRegenerates = true, routes = {} }) {
    this.lastRegenerates = lastRegenerates; // the conversation has a route regenerating its last reply
    this.routes = routes; // {branch, regenerate}: the per-message routes this server has
    this.base = base;
    this.who = who;
    this.userName = userName;
    this.onChanged = onChanged; // reload the page of history
    this.onRegenerate = onRegenerate; // (message) => void
    this.onBranch = onBranch; // (message, content) => void
    this.isBusy = isBusy;
    this.tree = false;
    this.nextBefore = null;
    this.messages = [];
    this.scroller = h("div", { class: "messages-scroller", tabindex: "0", "aria-label": "Messages" });
    this.earlier = h("button", { type: "button", class: "secondary small load-earlier", hidden: true, text: "Load earlier messages" });
    this.list = h("ol", { class: "messages" });
    this.scroller.append(this.earlier, this.list);
    this.pinned = true;
    this.scroller.addEventListener("scroll", () => {
      const gap = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      this.pinned = gap < 48;
    });
    this.earlier.addEventListener("click", () => this.loadEarlier());
    this.frame = 0;
  }

  /** Show a page of history (newest last). */
  setPage(page) {
    this.messages = page.items.slice();
    this.nextBefore = page.next_before;
    this.tree = this.tree || this.messages.some(hasTree);
    this.render();
    this.pinned = true;
    this.scrollToEnd();
  }

  async loadEarlier() {
    if (!this.nextBefore) return;
    try {
      const page = await api("GET", `${this.base}/messages?limit=50&before=${encodeURIComponent(this.nextBefore)}`);
      const height = this.scroller.scrollHeight;
      this.messages = [...page.items, ...this.messages];
      this.nextBefore = page.next_before;
      this.render();
      this.scroller.scrollTop += this.scroller.scrollHeight - height; // keep what was on screen in place
    } catch (exc) {
      showError(exc);
    }
  }

  render() {
    this.earlier.hidden = !this.nextBefore;
    replace(this.list);
    this.groupTurns(this.messages).forEach((item) => this.list.append(item));
    this.refreshLastActions();
  }

  /** Items for the list. The group view overrides this to lay a turn's replies side by side. */
  groupTurns(messages) {
    return messages.map((m) => this.messageNode(m));
  }

  scrollToEnd() {
    if (!this.pinned || this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.scroller.scrollTop = this.scroller.scrollHeight;
    });
  }

  /** Add one stored message at the end. */
  add(message) {
    if (this.messages.some((m) => m.id === message.id)) return;
    this.messages.push(message);
    this.tree = this.tree || hasTree(message);
    this.list.append(this.messageNode(message));
    this.scrollToEnd();
  }

  /** Remove `message` and everything after it from the view (a branch or a regenerated reply replaces them). */
  truncateAt(message) {
    const index = this.messages.findIndex((m) => m.id === message.id);
    if (index === -1) return;
    this.messages = this.messages.slice(0, index);
    this.render();
  }

  /** The last assistant message on screen gets the Regenerate button. */
  refreshLastActions() {
    const last = [...this.messages].reverse().find((m) => m.role === "assistant");
    for (const node of this.list.querySelectorAll(".message")) {
      node.classList.toggle("last-reply", Boolean(last) && node.dataset.messageId === String(last.id));
    }
  }

  /** A stored message as a list item (text always inserted as text). */
  messageNode(message, { tag = "li" } = {}) {
    const character = message.role === "assistant" ? this.who(message) : null;
    const name = character ? character.name : this.userName;
    const node = h(tag, {
      class: `message role-${message.role} status-${message.status || "complete"}`,
      dataset: { messageId: message.id, role: message.role },
    });
    const body = h("div", { class: "bubble" });
    const meta = h("div", { class: "meta" }, h("span", { class: "author", text: name }), h("time", { datetime: message.created_at, text: formatTime(message.created_at) }));
    if (message.edited_at) meta.append(h("span", { class: "muted", text: "edited" }));
    if (STATUS_LABELS[message.status]) meta.append(h("span", { class: `badge badge-${message.status}`, text: STATUS_LABELS[message.status] }));
    body.append(meta, h("div", { class: "text", text: message.content }));
    body.append(this.actions(message, node));
    append(node, [message.role === "assistant" ? avatar(character || { name }, "sm") : null, body]);
    return node;
  }

  actions(message, node) {
    const bar = h("div", { class: "message-actions" });
    bar.append(copyButton(() => message.content));
    if (this.tree && message.sibling_count > 1) bar.append(this.alternatives(message));
    const anyReply = this.tree && this.routes.regenerate; // else only the last reply (CSS)
    if (message.role === "assistant" && (anyReply || this.lastRegenerates)) {
      const regenerate = h("button", { type: "button", class: `icon-text regenerate${anyReply ? " any" : ""}`, "aria-label": "Regenerate this reply", title: "Regenerate", text: "↻ Regenerate" });
      regenerate.addEventListener("click", () => !this.isBusy() && this.onRegenerate(message));
      bar.append(regenerate);
    }
    if (this.tree) {
      const edit = h("button", { type: "button", class: "icon-text", "aria-label": "Edit this message", text: "Edit" });
      edit.addEventListener("click", () => this.startEdit(message, node));
      const remove = h("button", { type: "button", class: "icon-text", "aria-label": "Delete this message", text: "Delete" });
      remove.addEventListener("click", () => this.remove(message));
      bar.append(edit, remove);
    }
    return bar;
  }

  alternatives(message) {
    const index = message.sibling_index ?? 0;
    const count = message.sibling_count;
    const previous = h("button", { type: "button", class: "icon-button", "aria-label": "Previous alternative", disabled: index <= 0, text: "‹" });
    const next = h("button", { type: "button", class: "icon-button", "aria-label": "Next alternative", disabled: index >= count - 1, text: "›" });
    previous.addEventListener("click", () => this.selectSibling(message, index - 1));
    next.addEventListener("click", () => this.selectSibling(message, index + 1));
    return h("span", { class: "alternatives", role: "group", "aria-label": "Alternatives" }, previous, h("span", { class: "alt-count", text: `${index + 1}/${count}` }), next);
  }

  async selectSibling(message, target) {
    if (this.isBusy()) return;
    try {
      // The siblings' ids are in the conversation's export (the whole tree).
      const tree = await api("GET", `${this.base}/export?format=fastnpc`);
      const siblings = tree.messages
        .filter((m) => (m.parent_id ?? null) === (message.parent_id ?? null))
        .sort((a, b) => (a.sibling_index ?? 0) - (b.sibling_index ?? 0));
      const sibling = siblings.find((m) => (m.sibling_index ?? 0) === target);
      if (!sibling) return;
      const page = await api("POST", `${this.base}/messages/${encodeURIComponent(sibling.id)}/select`);
      this.setPage(page);
    } catch (exc) {
      showError(exc);
    }
  }

  startEdit(message, node) {
    if (this.isBusy()) return;
    const bubble = node.querySelector(".bubble");
    const input = h("textarea", { class: "edit-input", rows: 3, value: message.content, "aria-label": "Edit message" });
    const save = h("button", { type: "button", class: "primary small", text: "Save" });
    const branch = message.role === "user" && this.routes.branch ? h("button", { type: "button", class: "secondary small", title: "Keep the original and send this as a new branch", text: "Send as new branch" }) : null;
    const cancel = h("button", { type: "button", class: "secondary small", text: "Cancel" });
    const editor = h("div", { class: "editor" }, input, h("div", { class: "actions" }, cancel, branch, save));
    const original = [...bubble.childNodes];
    replace(bubble, editor);
    input.focus();
    cancel.addEventListener("click", () => replace(bubble, original));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") replace(bubble, original);
    });
    save.addEventListener("click", async () => {
      try {
        const updated = await api("PATCH", `${this.base}/messages/${encodeURIComponent(message.id)}`, { content: input.value });
        Object.assign(message, updated);
        node.replaceWith(this.messageNode(message));
        this.refreshLastActions();
      } catch (exc) {
        showError(exc);
      }
    });
    branch?.addEventListener("click", () => {
      if (input.value.trim()) this.onBranch(message, input.value);
    });
  }

  async remove(message) {
    if (this.isBusy()) return;
    if (!(await confirmDialog("Delete this message?", "It is deleted with every message that follows from it."))) return;
    try {
      await api("DELETE", `${this.base}/messages/${encodeURIComponent(message.id)}`);
      await this.onChanged();
    } catch (exc) {
      showError(exc);
    }
  }
}

/** Copy a message's text to the clipboard. */
function copyButton(text) {
  const button = h("button", { type: "button", class: "icon-text", "aria-label": "Copy this message", text: "Copy" });
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Cannot copy";
    }
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return button;
}

/** A reply being written: text grows at the end, then it becomes the stored message. */
export class PendingReply {
  constructor(character, { tag = "li" } = {}) {
    this.character = character;
    this.textNode = document.createTextNode("");
    this.statusLine = h("span", { class: "typing", text: "thinking…" });
    this.meta = h("div", { class: "meta" }, h("span", { class: "author", text: character?.name || "" }), this.statusLine);
    this.node = h(
      tag,
      { class: "message role-assistant streaming", dataset: { characterId: character?.id ?? "" }, "aria-busy": "true" },
      avatar(character, "sm"),
      // The empty actions row keeps the bubble's height when the stored message replaces it.
      h("div", { class: "bubble" }, this.meta, h("div", { class: "text" }, this.textNode), h("div", { class: "message-actions", "aria-hidden": "true" })),
    );
  }

  get text() {
    return this.textNode.data;
  }

  append(text) {
    if (!this.textNode.data) this.statusLine.textContent = "writing…";
    this.textNode.appendData(text);
  }

  fail(message) {
    this.node.classList.remove("streaming");
    this.node.classList.add("status-error");
    this.node.removeAttribute("aria-busy");
    this.statusLine.textContent = "";
    this.meta.append(h("span", { class: "badge badge-error", text: "Failed" }), h("span", { class: "muted error-text", text: message }));
  }
}
