// One-to-one chat: streamed replies, stop, regenerate, memories (memories.js), and following a generation
// that is already running (when the server offers GET .../chat/stream).

import { ApiError, api, stream } from "./api.js";
import { avatar, h } from "./dom.js";
import { Composer } from "./composer.js";
import { Conversation, PendingReply } from "./messages.js";
import { hasRoute } from "./features.js";
import { memoryPanel } from "./memories.js";
import { speakerName } from "./persona.js";
import { confirmDialog, showError } from "./ui.js";

/** What is said when a stream breaks and cannot be followed again. */
export const DROPPED_TEXT = "The connection dropped. The reply is still being written on the server; reload to see it.";
const DROPPED_DONE_TEXT = "The connection dropped before the reply was complete; reload to see what the server kept.";

export async function chatView(main, [id], { user, navigate }) {
  const characterPath = `/api/characters/${encodeURIComponent(id)}`;
  const base = `${characterPath}/chat`;
  const [character, page, branchRoute, regenerateRoute, you] = await Promise.all([
    api("GET", characterPath),
    api("GET", `${base}/messages?limit=50`),
    hasRoute("POST", "/api/characters/{}/chat/messages/{}/branch"),
    hasRoute("POST", "/api/characters/{}/chat/messages/{}/regenerate"),
    speakerName(user),
  ]);
  let controller = null;
  let running = false;

  const announcer = h("div", { class: "sr-only", "aria-live": "polite" });
  const status = h("p", { class: "chat-status", role: "status" });
  const conversation = new Conversation({
    base,
    who: () => character,
    userName: you,
    onChanged: reload,
    onRegenerate: (message) => regenerate(message),
    onBranch: (message, content) => {
      conversation.truncateAt(message);
      generate(`${base}/messages/${encodeURIComponent(message.id)}/branch`, { content });
    },
    isBusy: () => running,
    routes: { branch: branchRoute, regenerate: regenerateRoute },
  });
  const composer = new Composer({
    label: `Message to ${character.name}`,
    placeholder: `Say something to ${character.name}…`,
    onSend: (text) => generate(base, { content: text }, { sent: text }),
    onStop: stop,
  });

  const memoriesButton = h("button", { type: "button", class: "secondary small", "aria-expanded": "false", text: "Memories" });
  const clearButton = h("button", { type: "button", class: "secondary small", text: "Clear chat" });
  const memories = memoryPanel(base);
  memoriesButton.addEventListener("click", () => memories.toggle(memoriesButton));
  memories.onClose(() => memories.toggle(memoriesButton));
  clearButton.addEventListener("click", async () => {
    if (running) return;
    if (!(await confirmDialog(`Clear the chat with ${character.name}?`, "Every message and memory of this conversation is deleted.", "Clear"))) return;
    try {
      await api("DELETE", base);
      await reload();
    } catch (exc) {
      showError(exc);
    }
  });

  const header = h(
    "div",
    { class: "chat-header" },
    avatar(character, "md"),
    h("div", { class: "chat-title" }, h("h1", { text: character.name }), h("p", { class: "subtitle", text: character.profile?.identity?.occupation || "" })),
    h("div", { class: "actions" }, memoriesButton, h("a", { href: `#/characters/${encodeURIComponent(character.id)}`, class: "button secondary small", text: "Profile" }), clearButton),
  );
  main.append(h("div", { class: "chat-layout" }, h("section", { class: "chat-main", "aria-label": `Chat with ${character.name}` }, header, conversation.scroller, status, composer.form), memories.panel), announcer);
  conversation.setPage(page);
  if (!page.items.length) {
    conversation.list.append(h("li", { class: "chat-empty", text: `This is the beginning of your conversation with ${character.name}.` }));
  }
  composer.input.focus();

  async function reload() {
    const fresh = await api("GET", `${base}/messages?limit=50`);
    conversation.setPage(fresh);
  }

  function setRunning(value) {
    running = value;
    composer.setBusy(value);
    conversation.scroller.classList.toggle("running", value);
  }

  async function stop() {
    if (!running) return;
    try {
      await api("POST", `${base}/stop`);
    } catch (exc) {
      showError(exc);
    }
  }

  function regenerate(message) {
    const last = [...conversation.messages].reverse().find((m) => m.role === "assistant");
    const isLast = last && last.id === message.id;
    if (!isLast && !(conversation.tree && regenerateRoute)) return;
    conversation.truncateAt(message);
    generate(isLast ? `${base}/regenerate` : `${base}/messages/${encodeURIComponent(message.id)}/regenerate`, undefined, { eager: true });
  }

  /** Run one streamed generation (send, regenerate, branch or follow) into the list. */
  async function generate(path, body, { sent = null, method = "POST", lastEventId = null, pending = null, eager = false } = {}) {
    if (running) return;
    setRunning(true);
    status.textContent = "";
    conversation.list.querySelector(".chat-empty")?.remove();
    controller = new AbortController();
    const signal = controller.signal;
    const isSend = sent !== null;
    let reply = pending;
    const showPending = () => {
      if (reply) return;
      reply = new PendingReply(character);
      conversation.list.append(reply.node);
      conversation.scrollToEnd();
    };
    if (eager) showPending();
    let result = null;
    let handedOff = false;
    try {
      result = await stream(method, path, body, (kind, data) => {
        if (kind === "user_message") {
          sent = null; // stored: nothing to put back in the box
          conversation.add(data);
          showPending();
        } else if (kind === "delta") {
          showPending();
          reply.append(data.text);
          conversation.scrollToEnd();
        } else if (kind === "reply") {
          showPending();
          const node = conversation.messageNode(data);
          reply.node.replaceWith(node);
          conversation.messages.push(data);
          conversation.tree = conversation.tree || "parent_id" in data;
          conversation.refreshLastActions();
          reply = null;
          announcer.textContent = data.status === "interrupted" ? `${character.name}'s reply was stopped.` : `${character.name} replied.`;
          if (data.status === "interrupted") status.textContent = "Stopped. The partial reply was kept.";
        }
      }, { signal, lastEventId });
    } catch (exc) {
      if (signal.aborted) return;
      if (exc.name === "StreamDropped") {
        setRunning(false);
        handedOff = await follow(exc.lastEventId, reply);
        if (!handedOff) status.textContent = DROPPED_TEXT;
        return;
      }
      if (reply && reply.text) reply.fail(exc.message);
      else reply?.node.remove();
      if (sent !== null) composer.restore(sent);
      showError(exc);
      // After an `error` event the server keeps the partial text (status error): show it.
      if (exc instanceof ApiError && exc.status === 0) reload().catch(() => {});
    } finally {
      if (!signal.aborted && !handedOff) setRunning(false);
    }
    if (result && result.status === "idle") {
      // Following after a drop found nothing running: the reply was finished (and stored)
      // meanwhile, or never will be. Keep what arrived and say so.
      if (pending && pending.text) {
        pending.fail("Connection dropped.");
        status.textContent = DROPPED_DONE_TEXT;
      }
      else reply?.node.remove();
    }
    // The tree fields (sibling counts) and, after a regenerate or a branch, the path itself.
    if (result && result.status === "done" && (conversation.tree || !isSend)) await reload().catch(() => {});
  }

  /** Follow the generation running in this conversation, if the server can; true when it does. */
  async function follow(lastEventId = null, pending = null) {
    if (!(await hasRoute("GET", "/api/characters/{}/chat/stream"))) return false;
    generate(`${base}/stream`, undefined, { method: "GET", lastEventId, pending });
    return true;
  }

  follow();
  return () => {
    controller?.abort();
    composer.dispose();
  };
}
