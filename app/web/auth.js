// Log in or create an account.

import { api, session } from "./api.js";
import { field, h } from "./dom.js";
import { busy, errorLine, showError } from "./ui.js";
import { signedIn } from "./app.js";

export async function loginView(main, _params, { navigate }) {
  if (session.token) {
    navigate("#/characters");
    return;
  }
  let mode = "login";
  const username = h("input", { name: "username", autocomplete: "username", required: true, minlength: 3, maxlength: 32, pattern: "[A-Za-z0-9_.\\-]+", spellcheck: "false", autocapitalize: "off" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, minlength: 8, maxlength: 256 });
  const remember = h("input", { type: "checkbox", name: "remember", id: "remember" });
  const submit = h("button", { type: "submit", class: "primary wide", text: "Log in" });
  const error = errorLine();
  const heading = h("h1", { text: "Log in" });
  const lead = h("p", { class: "subtitle", text: "Welcome back. Your characters are waiting." });
  const switchButton = h("button", { type: "button", class: "link", text: "Create an account" });
  const switchText = h("span", { text: "New here? " });

  function setMode(next) {
    mode = next;
    const login = mode === "login";
    heading.textContent = login ? "Log in" : "Create an account";
    lead.textContent = login ? "Welcome back. Your characters are waiting." : "Usernames are 3–32 letters, digits, '.', '_' or '-'; passwords at least 8 characters.";
    submit.textContent = login ? "Log in" : "Create account";
    switchText.textContent = login ? "New here? " : "Already have an account? ";
    switchButton.textContent = login ? "Create an account" : "Log in";
    password.autocomplete = login ? "current-password" : "new-password";
    error.hidden = true;
  }
  switchButton.addEventListener("click", () => setMode(mode === "login" ? "register" : "login"));

  const form = h(
    "form",
    { class: "auth-form", novalidate: true },
    heading,
    lead,
    field("Username", username),
    field("Password", password),
    h("div", { class: "check" }, remember, h("label", { for: "remember", text: "Keep me signed in on this device" })),
    error,
    submit,
    h("p", { class: "switch" }, switchText, switchButton),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (!form.checkValidity()) {
      const bad = form.querySelector(":invalid");
      showError({ message: bad === username ? "Enter a username of 3–32 letters, digits, '.', '_' or '-'." : "Enter a password of at least 8 characters." }, error);
      bad.focus();
      return;
    }
    const path = mode === "login" ? "/api/auth/login" : "/api/auth/register";
    try {
      const answer = await busy(submit, mode === "login" ? "Logging in…" : "Creating…", () =>
        api("POST", path, { username: username.value, password: password.value }),
      );
      signedIn(answer.user, answer.token, remember.checked);
    } catch (exc) {
      showError(exc, error);
    }
  });
  main.append(
    h(
      "section",
      { class: "auth" },
      h("div", { class: "auth-intro" }, h("p", { class: "brand-large", text: "FastNPC" }), h("p", { text: "Generate characters, talk to them one to one, or put them in a room together and watch them answer at once." }), h("p", { class: "muted", lang: "zh", text: "生成角色，与他们对话，或让他们在群聊中同时回答。" })),
      form,
    ),
  );
  username.focus();
}
