// What this server offers, read from its OpenAPI document, so the page can show controls for
// routes that exist (e.g. following a running generation) without probing them.

let cached = null;

/** A set of "METHOD /path/{}/…" strings (path parameters written as {}). */
export function serverRoutes() {
  if (!cached) {
    cached = fetch("/openapi.json", { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : { paths: {} }))
      .then((doc) => {
        const routes = new Set();
        for (const [path, operations] of Object.entries(doc.paths || {})) {
          const normal = path.replace(/\{[^}]*\}/g, "{}");
          for (const method of Object.keys(operations)) routes.add(`${method.toUpperCase()} ${normal}`);
        }
        return routes;
      })
      .catch(() => new Set());
  }
  return cached;
}

/** True when the server has the route, e.g. `hasRoute("GET", "/api/groups/{}/stream")`. */
export async function hasRoute(method, path) {
  return (await serverRoutes()).has(`${method} ${path}`);
}
