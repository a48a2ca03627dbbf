// The message box shared by one-to-one and group chat: Enter sends, Shift+Enter is a new line,
// Esc (anywhere on the page) stops the reply being written. Send and Stop share one slot, so
// nothing moves when a reply starts or ends.

import { h } from "./dom.js";

export class Composer {
  constructor({ label, placeholder, onSend, onStop, maxLength = 8000 }) {
    this.onSend = onSend;
    this.onStop = onStop;
    this.busy = false;
    this.input = h("textarea", { id: "composer-input", rows: 1, maxlength: maxLength, placeholder, "aria-label": label, enterkeyhint: "send" });
    this.send = h("button", { type: "submit", class: "primary send", text: "Send" });
    this.stop = h("button", { type: "button", class: "danger stop", hidden: true, "aria-keyshortcuts": "Escape", text: "Stop" });
    this.hint = h("p", { class: "composer-hint", id: "composer-hint", text: "Enter to send · Shift+Enter for a new line · Esc to stop" });
    this.input.setAttribute("aria-describedby", this.hint.id);
    this.form = h("form", { class: "composer" }, h("div", { class: "composer-row" }, this.input, h("div", { class: "composer-buttons" }, this.send, this.stop)), this.hint);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.stop.addEventListener("click", () => this.onStop());
    this.onKey = (event) => {
      if (event.key === "Escape" && this.busy && !document.querySelector("dialog[open]")) {
        event.preventDefault();
        this.onStop();
      }
    };
    document.addEventListener("keydown", this.onKey);
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  submit() {
    const text = this.input.value;
    if (this.busy || !text.trim()) return;
    this.clear();
    this.onSend(text);
  }

  clear() {
    this.input.value = "";
    this.autosize();
  }

  /** Put back a message the server did not take (unless something new was typed meanwhile). */
  restore(text) {
    if (this.input.value.trim()) return;
    this.input.value = text;
    this.autosize();
  }

  setBusy(busy) {
    this.busy = busy;
    const stopHadFocus = document.activeElement === this.stop;
    this.send.hidden = busy;
    this.stop.hidden = !busy;
    if (!busy && stopHadFocus) this.input.focus();
  }

  dispose() {
    document.removeEventListener("keydown", this.onKey);
  }
}
