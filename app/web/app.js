// The page shell: who is signed in, the navigation, and a hash router over the views.

import { api, onUnauthorized, session } from "./api.js";
import { h, replace } from "./dom.js";
import { notify, showError } from "./ui.js";
import { loginView } from "./auth.js";
import { characterListView, characterView, generateView } from "./characters.js";
import { chatView } from "./chat.js";
import { groupListView, groupView } from "./groups.js";
import { adminView } from "./admin.js";
import { personaView } from "./persona.js";

const state = { user: null, cleanup: null };

const ROUTES = [
  [/^#\/login$/, loginView, { public: true }],
  [/^#\/characters$/, characterListView],
  [/^#\/characters\/new$/, generateView],
  [/^#\/characters\/([^/]+)$/, characterView],
  [/^#\/chat\/([^/]+)$/, chatView],
  [/^#\/groups$/, groupListView],
  [/^#\/groups\/([^/]+)$/, groupView],
  [/^#\/persona$/, personaView],
  [/^#\/admin$/, adminView],
];

const main = () => document.getElementById("main");

/** Go to a page of the app. */
export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** After login or register: remember the user and open the characters. */
export function signedIn(user, token, remember) {
  session.save(token, remember);
  state.user = user;
  renderNav();
  navigate("#/characters");
}

async function logOut() {
  try {
    await api("POST", "/api/auth/logout");
  } catch (error) {
    if (error.status !== 401) showError(error);
  }
  session.clear();
  state.user = null;
  renderNav();
  navigate("#/login");
}

function navLink(hash, label) {
  const current = location.hash.startsWith(hash) || (hash === "#/characters" && location.hash.startsWith("#/chat"));
  return h("a", { href: hash, class: "nav-link", "aria-current": current ? "page" : null, text: label });
}

function renderNav() {
  const nav = document.getElementById("nav");
  if (!state.user) {
    replace(nav);
    return;
  }
  const links = [navLink("#/characters", "Characters"), navLink("#/groups", "Groups"), navLink("#/persona", "Persona")];
  if (state.user.is_admin) links.push(navLink("#/admin", "Admin"));
  replace(
    nav,
    h("div", { class: "nav-links" }, links),
    h(
      "div",
      { class: "nav-user" },
      h("span", { class: "username", title: "Signed in as", text: state.user.username }),
      h("button", { type: "button", class: "secondary small", onclick: logOut, text: "Log out" }),
    ),
  );
}

async function route() {
  if (state.cleanup) {
    try {
      state.cleanup();
    } catch {
      /* a view's cleanup never blocks navigation */
    }
    state.cleanup = null;
  }
  const hash = location.hash || "#/characters";
  const match = ROUTES.map(([pattern, view, options]) => [hash.match(pattern), view, options || {}]).find(([m]) => m);
  if (!match) {
    navigate(session.token ? "#/characters" : "#/login");
    return;
  }
  const [params, view, options] = match;
  if (!options.public && !session.token) {
    navigate("#/login");
    return;
  }
  if (!options.public && !state.user) {
    try {
      state.user = await api("GET", "/api/me");
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    }
  }
  renderNav();
  const container = main();
  replace(container);
  container.setAttribute("aria-busy", "true");
  try {
    const cleanup = await view(container, params.slice(1), { user: state.user, navigate });
    if (typeof cleanup === "function") state.cleanup = cleanup;
  } catch (error) {
    showError(error);
  } finally {
    container.removeAttribute("aria-busy");
  }
  const heading = container.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · FastNPC`;
}

onUnauthorized(() => {
  if (!session.token) return;
  session.clear();
  state.user = null;
  renderNav();
  notify("Your session has ended. Please log in again.", "error");
  navigate("#/login");
});

window.addEventListener("hashchange", route);
route();
