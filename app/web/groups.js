// Group chat: the moderator picks who answers, and the chosen characters' replies stream side
// by side at the same time.

import { ApiError, api, stream } from "./api.js";
import { avatar, field, h, replace } from "./dom.js";
import { Composer } from "./composer.js";
import { Conversation, PendingReply } from "./messages.js";
import { DROPPED_TEXT } from "./chat.js";
import { STRATEGIES, groupSettingsPanel } from "./group-settings.js";
import { memoryPanel } from "./memories.js";
import { speakerName } from "./persona.js";
import { hasRoute } from "./features.js";
import { busy, confirmDialog, emptyState, errorLine, pageHeader, showError } from "./ui.js";

function listNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

export async function groupListView(main, _params, { navigate }) {
  const [{ items: groups }, { items: characters }] = await Promise.all([api("GET", "/api/groups"), api("GET", "/api/characters")]);
  const byId = new Map(characters.map((c) => [String(c.id), c]));
  main.append(pageHeader("Groups", [], "Put characters in one room; the moderator decides who answers, and they answer at once."));

  const list = h("ul", { class: "card-grid", "aria-label": "Your groups" });
  for (const group of groups) {
    const members = group.character_ids.map((id) => byId.get(String(id))).filter(Boolean);
    list.append(
      h(
        "li",
        { class: "card group-card" },
        h("div", { class: "card-head" }, h("div", { class: "avatar-stack" }, members.slice(0, 4).map((m) => avatar(m, "sm"))), h("div", { class: "card-title" }, h("h2", { text: group.name }))),
        h("p", { class: "card-text", text: members.map((m) => m.name).join(" · ") }),
        h("p", { class: "muted", text: `${STRATEGIES[group.strategy] || group.strategy} · up to ${group.max_speakers} at a time` }),
        h("div", { class: "actions" }, h("a", { href: `#/groups/${encodeURIComponent(group.id)}`, class: "button primary small", "aria-label": `Open ${group.name}`, text: "Open" })),
      ),
    );
  }
  if (groups.length) main.append(list);

  // Create a group.
  const name = h("input", { name: "group-name", required: true, maxlength: 100, autocomplete: "off" });
  const strategy = h("select", { name: "strategy" }, Object.entries(STRATEGIES).map(([value, text]) => h("option", { value, text })));
  const maxSpeakers = h("input", { name: "max_speakers", type: "number", min: 1, max: 8, value: "2", inputmode: "numeric" });
  const members = h("fieldset", { class: "member-picker" }, h("legend", { text: "Members (2 to 8)" }));
  for (const character of characters) {
    const box = h("input", { type: "checkbox", value: character.id, id: `member-${character.id}` });
    members.append(h("div", { class: "check member" }, box, h("label", { for: box.id }, avatar(character, "xs"), h("span", { text: character.name }))));
  }
  const create = h("button", { type: "submit", class: "primary", text: "Create group" });
  const error = errorLine();
  const form = h("form", { class: "panel group-form", "aria-labelledby": "new-group-title" }, h("h2", { id: "new-group-title", text: "New group" }), field("Group name", name), members, h("div", { class: "field-row" }, field("Who answers", strategy), field("At most this many answer each turn", maxSpeakers)), error, h("div", { class: "actions" }, create));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const ids = [...members.querySelectorAll("input:checked")].map((box) => box.value);
    if (!name.value.trim()) return showError({ message: "Give the group a name." }, error);
    if (ids.length < 2 || ids.length > 8) return showError({ message: "Choose between 2 and 8 members." }, error);
    const speakers = Number.parseInt(maxSpeakers.value, 10);
    try {
      const group = await busy(create, "Creating…", () =>
        api("POST", "/api/groups", { name: name.value.trim(), character_ids: ids, strategy: strategy.value, max_speakers: Number.isFinite(speakers) ? speakers : 2 }),
      );
      navigate(`#/groups/${encodeURIComponent(group.id)}`);
    } catch (exc) {
      showError(exc, error);
    }
  });
  if (characters.length < 2) {
    main.append(emptyState(groups.length ? "Need more characters" : "No groups yet", "A group needs at least two characters.", h("a", { href: "#/characters/new", class: "button primary", text: "Generate a character" })));
  } else {
    main.append(form);
  }
}

/** A group's history lays each turn's replies side by side. */
class GroupConversation extends Conversation {
  groupTurns(messages) {
    const items = [];
    let turn = null;
    for (const message of messages) {
      if (message.role === "assistant") {
        if (!turn) {
          turn = turnNode(null);
          items.push(turn.node);
        }
        turn.replies.append(this.messageNode(message, { tag: "div" }));
      } else {
        turn = null;
        items.push(this.messageNode(message));
      }
    }
    return items;
  }
}

function turnNode(note) {
  const replies = h("div", { class: "turn-replies" });
  const node = h("li", { class: "turn" }, note, replies);
  return { node, replies };
}

export async function groupView(main, [id], { user, navigate }) {
  const base = `/api/groups/${encodeURIComponent(id)}`;
  const [group, page, { items: characters }, branchRoute, regenerateRoute, you] = await Promise.all([
    api("GET", base),
    api("GET", `${base}/messages?limit=50`),
    api("GET", "/api/characters"),
    hasRoute("POST", "/api/groups/{}/messages/{}/branch"),
    hasRoute("POST", "/api/groups/{}/messages/{}/regenerate"),
    speakerName(user),
  ]);
  const byId = new Map(characters.map((c) => [String(c.id), c]));
  const members = group.character_ids.map((cid) => byId.get(String(cid)) || { id: cid, name: "Unknown" });
  const muted = new Set((group.muted_character_ids || []).map(String));
  let running = false;
  let controller = null;
  const announcer = h("div", { class: "sr-only", "aria-live": "polite" });
  const status = h("p", { class: "chat-status", role: "status" });

  const conversation = new GroupConversation({
    base,
    who: (message) => byId.get(String(message.character_id)) || { id: message.character_id, name: "Unknown" },
    userName: you,
    onChanged: reload,
    lastRegenerates: false, // a group reply is regenerated only through the per-message route
    routes: { branch: branchRoute, regenerate: regenerateRoute },
    onRegenerate: (message) => {
      conversation.truncateAt(message);
      run(`${base}/messages/${encodeURIComponent(message.id)}/regenerate`, undefined, { fallbackSpeaker: message.character_id });
    },
    onBranch: (message, content) => {
      conversation.truncateAt(message);
      run(`${base}/messages/${encodeURIComponent(message.id)}/branch`, { content });
    },
    isBusy: () => running,
  });
  const composer = new Composer({
    label: `Message to ${group.name}`,
    placeholder: `Say something to ${group.name}…`,
    onSend: (text) => {
      const speakerIds = askBoxes.filter((box) => box.checked).map((box) => box.value);
      if (group.strategy === "manual" && !speakerIds.length) {
        composer.restore(text);
        status.textContent = "Manual group: choose who answers first.";
        return;
      }
      run(`${base}/messages`, speakerIds.length ? { content: text, speaker_ids: speakerIds } : { content: text }, { sent: text });
    },
    onStop: stop,
  });

  // Who answers this turn (speaker_ids): always offered in a manual group, folded away otherwise.
  const askBoxes = members.map((m) => h("input", { type: "checkbox", value: m.id, id: `ask-${m.id}` }));
  const askList = h(
    "div",
    { class: "ask-list" },
    members.map((m, i) => h("div", { class: "check" }, askBoxes[i], h("label", { for: askBoxes[i].id, text: `${m.name}${muted.has(String(m.id)) ? " (muted)" : ""}` }))),
  );
  const ask =
    group.strategy === "manual"
      ? h("fieldset", { class: "ask-picker" }, h("legend", { text: "Who answers this time" }), askList)
      : h("details", { class: "ask-picker" }, h("summary", { text: "Choose who answers this time" }), h("fieldset", {}, h("legend", { class: "sr-only", text: "Who answers this time" }), askList));
  const memberSelect = h("select", { "aria-label": "Whose memories" }, h("option", { value: "", text: "Everyone" }), members.map((m) => h("option", { value: m.id, text: m.name })));
  const memories = memoryPanel(base, {
    extra: field("Whose memories", memberSelect),
    canCompress: false,
    query: () => (memberSelect.value ? `character_id=${encodeURIComponent(memberSelect.value)}` : ""),
    whose: (memory) => (memory.character_id ? (byId.get(String(memory.character_id)) || { name: "Unknown" }).name : null),
    owner: () => {
      if (!memberSelect.value) throw new Error("Choose whose memory it is (Whose memories) first.");
      return { character_id: memberSelect.value };
    },
  });
  memberSelect.addEventListener("change", () => memories.load());
  const memoriesButton = h("button", { type: "button", class: "secondary small", "aria-expanded": "false", text: "Memories" });
  const settings = groupSettingsPanel(group, characters, { onSaved: () => navigate(location.hash) });
  const settingsButton = h("button", { type: "button", class: "secondary small", "aria-expanded": "false", text: "Settings" });
  // one side panel at a time
  const panels = [
    [memories, memoriesButton],
    [settings, settingsButton],
  ];
  for (const [panel, button] of panels) {
    button.addEventListener("click", () => {
      for (const [other, otherButton] of panels) if (other !== panel && other.isOpen()) other.toggle(otherButton);
      panel.toggle(button);
    });
    panel.onClose(() => panel.toggle(button));
  }
  const deleteButton = h("button", { type: "button", class: "secondary small", text: "Delete group" });
  deleteButton.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete ${group.name}?`, "The group and its conversation are deleted; the characters stay."))) return;
    try {
      await api("DELETE", base);
      navigate("#/groups");
    } catch (exc) {
      showError(exc);
    }
  });
  const actions = [memoriesButton, settingsButton, deleteButton];
  if (await hasRoute("POST", "/api/groups/{}/continue")) {
    const cont = h("button", { type: "button", class: "secondary small", title: "The characters talk among themselves for one round", text: "Let them talk" });
    cont.addEventListener("click", () => run(`${base}/continue`, { rounds: 1 }, { noUser: true }));
    actions.unshift(cont);
  }

  const header = h(
    "div",
    { class: "chat-header" },
    h("div", { class: "avatar-stack" }, members.slice(0, 4).map((m) => avatar(m, "sm"))),
    h("div", { class: "chat-title" }, h("h1", { text: group.name }), h("p", { class: "subtitle", text: `${members.map((m) => (muted.has(String(m.id)) ? `${m.name} (muted)` : m.name)).join(" · ")} — ${STRATEGIES[group.strategy] || group.strategy}` })),
    h("div", { class: "actions" }, actions),
  );
  main.append(h("div", { class: "chat-layout" }, h("section", { class: "chat-main", "aria-label": `Group chat ${group.name}` }, header, conversation.scroller, status, ask, composer.form), memories.panel, settings.panel), announcer);
  conversation.setPage(page);
  if (!page.items.length) conversation.list.append(h("li", { class: "chat-empty", text: `Everyone in ${group.name} is listening.` }));
  composer.input.focus();

  async function reload() {
    conversation.setPage(await api("GET", `${base}/messages?limit=50`));
  }

  async function stop() {
    if (!running) return;
    try {
      await api("POST", `${base}/stop`);
    } catch (exc) {
      showError(exc);
    }
  }

  /** One streamed group turn (or several, for `continue`). */
  async function run(path, body, { sent = null, method = "POST", lastEventId = null, fallbackSpeaker = null } = {}) {
    if (running) return;
    running = true;
    composer.setBusy(true);
    status.textContent = "";
    conversation.list.querySelector(".chat-empty")?.remove();
    controller = new AbortController();
    const signal = controller.signal;
    let pendings = new Map();
    let currentTurn = null;
    let handedOff = false;
    // A reply regenerated alone has no `speakers` event: its card is made when its text arrives.
    const pendingFor = (cid) => {
      if (!pendings.has(cid)) {
        if (!currentTurn) {
          const last = conversation.list.lastElementChild;
          currentTurn = last?.classList.contains("turn") ? { node: last, replies: last.querySelector(".turn-replies") } : turnNode(null);
          if (currentTurn.node !== last) conversation.list.append(currentTurn.node);
        }
        const pending = new PendingReply(byId.get(cid) || { id: cid, name: "Unknown" }, { tag: "div" });
        pendings.set(cid, pending);
        currentTurn.replies.append(pending.node);
      }
      return pendings.get(cid);
    };
    const speakerName = (cid) => (byId.get(String(cid)) || { name: "Unknown" }).name;
    try {
      const result = await stream(method, path, body, (kind, data) => {
        if (kind === "user_message") {
          sent = null; // stored: nothing to put back in the box
          conversation.add(data);
        } else if (kind === "speakers") {
          const ids = data.character_ids.map(String);
          const chosen = ids.map(speakerName);
          const note = h(
            "p",
            { class: "moderator-note" },
            h("span", { class: "moderator-label", text: "Moderator" }),
            h("span", { class: "chosen", text: chosen.length ? `chose ${listNames(chosen)}` : "chose nobody this time" }),
            data.reason ? h("span", { class: "reason", text: `— ${data.reason}` }) : null,
          );
          const turn = turnNode(note);
          currentTurn = turn;
          pendings = new Map();
          for (const cid of ids) {
            const pending = new PendingReply(byId.get(cid) || { id: cid, name: "Unknown" }, { tag: "div" });
            pendings.set(cid, pending);
            turn.replies.append(pending.node);
          }
          turn.node.dataset.speakers = String(ids.length);
          conversation.list.append(turn.node);
          announcer.textContent = chosen.length ? `${listNames(chosen)} will answer.` : "Nobody answers.";
          conversation.scrollToEnd();
        } else if (kind === "delta") {
          pendingFor(String(data.character_id ?? fallbackSpeaker)).append(data.text);
          conversation.scrollToEnd();
        } else if (kind === "reply") {
          const pending = pendingFor(String(data.character_id));
          const node = conversation.messageNode(data, { tag: "div" });
          pending.node.replaceWith(node);
          pendings.delete(String(data.character_id));
          conversation.messages.push(data);
          conversation.tree = conversation.tree || "parent_id" in data;
          conversation.refreshLastActions();
          if (data.status === "interrupted") status.textContent = "Stopped. The partial replies were kept.";
        } else if (kind === "speaker_error" || kind === "reply_kept") {
          pendings.get(String(data.character_id))?.fail(data.message || "This reply failed.");
        }
      }, { signal, lastEventId });
      for (const pending of pendings.values()) if (!pending.text) pending.node.remove();
      if (result.status === "done") announcer.textContent = "Everyone has answered.";
      if (result.status === "done" && conversation.tree) await reload().catch(() => {});
    } catch (exc) {
      if (signal.aborted) return;
      if (exc.name === "StreamDropped" && (await hasRoute("GET", "/api/groups/{}/stream"))) {
        running = false;
        handedOff = true;
        reload()
          .catch(() => {})
          .then(() => run(`${base}/stream`, undefined, { method: "GET", lastEventId: null }));
        return;
      }
      for (const pending of pendings.values()) {
        if (pending.text) pending.fail(exc.message);
        else pending.node.remove();
      }
      if (sent !== null) composer.restore(sent);
      if (exc.name === "StreamDropped") status.textContent = DROPPED_TEXT;
      else showError(exc);
      if (exc instanceof ApiError && exc.status === 0) reload().catch(() => {});
    } finally {
      if (!signal.aborted && !handedOff) {
        running = false;
        composer.setBusy(false);
      }
    }
  }

  if (await hasRoute("GET", "/api/groups/{}/stream")) run(`${base}/stream`, undefined, { method: "GET" });
  return () => {
    controller?.abort();
    composer.dispose();
  };
}
