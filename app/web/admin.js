// Administration: users (enable/disable), counts, LLM metrics, the live concurrency limit and
// background tasks. Shown to administrators only; the API refuses everyone else (403).

import { api } from "./api.js";
import { field, formatTime, h, replace } from "./dom.js";
import { busy, errorLine, notify, pageHeader, showError } from "./ui.js";

function table(caption, headings, rows) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h("table", {}, h("caption", { text: caption }), h("thead", {}, h("tr", {}, headings.map((x) => h("th", { scope: "col", text: x })))), h("tbody", {}, rows)),
  );
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("span", { class: "stat-value", text: value ?? "–" }), h("span", { class: "stat-label", text: label }));
}

const number = (value) => (typeof value === "number" ? value.toLocaleString() : "–");
const ms = (value) => (typeof value === "number" ? `${Math.round(value)} ms` : "–");

export async function adminView(main, _params, { user }) {
  main.append(pageHeader("Admin", [], "Users, the LLM and background work."));
  if (!user.is_admin) {
    main.append(h("div", { class: "empty refused", role: "alert" }, h("h2", { text: "Administrators only" }), h("p", { text: "Your account cannot open the admin pages. Ask an administrator if you need access." })));
    return;
  }
  const refresh = h("button", { type: "button", class: "secondary small", text: "Refresh" });
  main.querySelector(".page-header .actions").append(refresh);
  const sections = {
    overview: h("section", { class: "panel", "aria-labelledby": "admin-overview" }),
    llm: h("section", { class: "panel admin-wide", "aria-labelledby": "admin-llm" }),
    tasks: h("section", { class: "panel", "aria-labelledby": "admin-tasks" }),
    users: h("section", { class: "panel", "aria-labelledby": "admin-users" }),
  };
  main.append(h("div", { class: "admin-grid" }, sections.overview, sections.tasks, sections.llm), sections.users);

  async function load() {
    try {
      const [stats, llm, tasks, users] = await Promise.all([api("GET", "/api/admin/stats"), api("GET", "/api/admin/llm"), api("GET", "/api/admin/tasks"), api("GET", "/api/admin/users")]);
      renderOverview(stats);
      renderLLM(llm);
      renderTasks(tasks);
      renderUsers(users.items);
    } catch (exc) {
      showError(exc);
    }
  }

  function renderOverview(stats) {
    replace(
      sections.overview,
      h("h2", { id: "admin-overview", text: "Overview" }),
      h("div", { class: "stats" }, Object.entries(stats).map(([key, value]) => stat(key[0].toUpperCase() + key.slice(1), number(value)))),
    );
  }

  function renderLLM(llm) {
    const limiter = llm.limiter || {};
    const input = h("input", { type: "number", min: 1, max: 1000, value: String(limiter.total ?? ""), name: "max_concurrency", inputmode: "numeric", required: true });
    const apply = h("button", { type: "submit", class: "primary small", text: "Apply" });
    const error = errorLine();
    const form = h("form", { class: "inline-form" }, field("Concurrent LLM calls (1–1000)", input, "Takes effect at once, without a restart."), apply, error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const value = Number.parseInt(input.value, 10);
      if (!Number.isInteger(value) || value < 1 || value > 1000) return showError({ message: "Enter a whole number from 1 to 1000." }, error);
      try {
        await busy(apply, "Applying…", () => api("PUT", "/api/admin/llm/limits", { max_concurrency: value }));
        notify(`The LLM limit is now ${value}.`);
        await load();
      } catch (exc) {
        showError(exc, error);
      }
    });
    const models = Object.entries(llm.models || {});
    const rows = models.map(([model, m]) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", text: model }),
        h("td", { text: number(m.calls) }),
        h("td", { text: number(m.errors) }),
        h("td", { text: number(m.retries) }),
        h("td", { text: `${ms(m.latency_ms?.p50)} / ${ms(m.latency_ms?.p95)}` }),
        h("td", { text: `${ms(m.first_token_ms?.p50)} / ${ms(m.first_token_ms?.p95)}` }),
        h("td", { text: `${number(m.prompt_tokens)} / ${number(m.completion_tokens)}` }),
        h("td", { text: typeof m.cost === "number" ? `$${m.cost.toFixed(4)}` : "–" }),
      ),
    );
    replace(
      sections.llm,
      h("h2", { id: "admin-llm", text: "LLM" }),
      h("div", { class: "stats" }, stat("Limit", number(limiter.total)), stat("In use", number(limiter.borrowed)), stat("Waiting", number(limiter.waiting))),
      form,
      models.length
        ? table("Calls by model", ["Model", "Calls", "Errors", "Retries", "Latency p50 / p95", "First token p50 / p95", "Tokens in / out", "Cost"], rows)
        : h("p", { class: "muted", text: "No LLM calls yet." }),
    );
  }

  function renderTasks(tasks) {
    const memory = tasks.memory || {};
    replace(
      sections.tasks,
      h("h2", { id: "admin-tasks", text: "Background tasks" }),
      h("h3", { text: "Memory compression" }),
      h("div", { class: "stats" }, ["queued", "running", "done", "failed", "restarts"].map((k) => stat(k[0].toUpperCase() + k.slice(1), number(memory[k])))),
      h("h3", { text: "Generations" }),
      h("div", { class: "stats" }, stat("Running", number(tasks.generations?.running))),
    );
  }

  function renderUsers(users) {
    const rows = users.map((u) => {
      const toggle = h("button", {
        type: "button",
        class: u.disabled ? "secondary small" : "danger-outline small",
        "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.username}`,
        disabled: u.id === user.id,
        title: u.id === user.id ? "You cannot disable yourself here" : null,
        text: u.disabled ? "Enable" : "Disable",
      });
      toggle.addEventListener("click", async () => {
        try {
          await busy(toggle, "…", () => api("PATCH", `/api/admin/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled }));
          notify(`${u.username} is ${u.disabled ? "enabled" : "disabled"}.`);
          await load();
        } catch (exc) {
          showError(exc);
        }
      });
      return h(
        "tr",
        { dataset: { userId: u.id } },
        h("th", { scope: "row", text: u.username }),
        h("td", {}, u.is_admin ? h("span", { class: "badge", text: "Admin" }) : "User"),
        h("td", {}, u.disabled ? h("span", { class: "badge badge-error", text: "Disabled" }) : h("span", { class: "badge badge-ok", text: "Active" })),
        h("td", { text: number(u.characters) }),
        h("td", { text: number(u.messages) }),
        h("td", { text: formatTime(u.created_at) }),
        h("td", {}, toggle),
      );
    });
    replace(sections.users, h("h2", { id: "admin-users", text: `Users (${users.length})` }), table("Users", ["User", "Role", "State", "Characters", "Messages", "Joined", ""], rows));
  }

  refresh.addEventListener("click", () => busy(refresh, "Refreshing…", load));
  await load();
}
