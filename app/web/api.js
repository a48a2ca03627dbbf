// The client of FastNPC's public HTTP API: JSON calls, SSE streams over fetch, the session token.

import { SSEParser } from "./sse.js";

const TOKEN_KEY = "fastnpc.token";

/** The bearer token: in sessionStorage, or in localStorage when the person chose to stay signed in. */
export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
  },
  save(token, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
  },
};

/** An error answered by the API (or a network failure, status 0), with its human message. */
export class ApiError extends Error {
  constructor(status, code, message, details = null, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** A stream that ended without its terminal event (the connection dropped). */
export class StreamDropped extends Error {
  constructor(lastEventId) {
    super("The connection dropped before the reply was complete.");
    this.name = "StreamDropped";
    this.lastEventId = lastEventId;
  }
}

let unauthorizedHandler = null;
/** Called with the error when any call answers 401 (the token expired or was revoked). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

/** The human sentence for an API error body, with field errors of a validation failure. */
export function humanMessage(status, error) {
  if (!error || typeof error.message !== "string") {
    return status ? `The server answered with status ${status}.` : "Something went wrong.";
  }
  let message = capitalize(error.message);
  if (Array.isArray(error.details) && error.details.length) {
    const parts = error.details
      .filter((d) => d && typeof d.msg === "string")
      .map((d) => {
        const where = (d.loc || []).filter((x) => x !== "body").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      });
    if (parts.length) message += ` (${parts.join("; ")})`;
  }
  if (!/[.!?)]$/.test(message)) message += ".";
  return message;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && typeof body === "object" ? body.error : null;
  const apiError = new ApiError(
    response.status,
    (error && error.code) || `http_${response.status}`,
    humanMessage(response.status, error),
    error ? error.details : null,
    response.headers.get("Retry-After"),
  );
  if (response.status === 401 && unauthorizedHandler) unauthorizedHandler(apiError);
  return apiError;
}

function headers(accept, hasBody, extra = {}) {
  const result = { Accept: accept, ...extra };
  const token = session.token;
  if (token) result.Authorization = `Bearer ${token}`;
  if (hasBody) result["Content-Type"] = "application/json";
  return result;
}

async function send(method, path, body, accept, { signal, extraHeaders } = {}) {
  try {
    return await fetch(path, {
      method,
      headers: headers(accept, body !== undefined, extraHeaders),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network_error", "Cannot reach the server. Check the connection and try again.");
  }
}

/** A JSON call: resolves with the body (null for 204), rejects with an ApiError. */
export async function api(method, path, body, options = {}) {
  const response = await send(method, path, body, "application/json", options);
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

/**
 * A streamed call. `onEvent(name, data, id)` gets every event; resolves when `done` arrives,
 * with {status: "done"} (or {status: "idle"} for a 204: nothing to follow). An `error` event
 * rejects with an ApiError; a stream cut before its terminal event rejects with StreamDropped.
 */
export async function stream(method, path, body, onEvent, { signal, lastEventId } = {}) {
  const extraHeaders = lastEventId ? { "Last-Event-ID": lastEventId } : {};
  const response = await send(method, path, body, "text/event-stream", { signal, extraHeaders });
  if (response.status === 204) return { status: "idle" };
  if (!response.ok) throw await errorFrom(response);
  if (!(response.headers.get("Content-Type") || "").includes("text/event-stream")) {
    return { status: "json", data: await response.json() };
  }
  const parser = new SSEParser();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let lastId = lastEventId || null;
  let failure = null;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (exc) {
        if (exc.name === "AbortError" || signal?.aborted) throw exc;
        throw new StreamDropped(lastId);
      }
      if (chunk.done) break;
      for (const event of parser.push(chunk.value)) {
        if (event.id) lastId = event.id;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          continue; // not ours: clients ignore what they do not understand
        }
        if (event.event === "error") {
          failure = new ApiError(0, data.code || "error", humanMessage(0, data));
          continue;
        }
        onEvent(event.event, data, event.id);
        if (event.event === "done") return { status: "done", lastEventId: lastId };
      }
      if (failure) throw failure;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (failure) throw failure;
  throw new StreamDropped(lastId);
}
