// Requests to the Cutout API from the page: the API key, a timeout, and every failure as
// an ApiError the page can put in words. app.js configures it once (where the key is
// kept, what a 401 does); review.js and editor.js use the same `api`.

export const REQUEST_TIMEOUT_MS = 30000;

const hooks = {
  key: () => "",
  onUnauthorized: (_message) => {},
  onAnswer: () => {}, // any answer from the server: the connection is back
};

export function configure(options) {
  Object.assign(hooks, options);
}

export class ApiError extends Error {
  constructor(message, { kind = "http", status = 0, code = "", item = null } = {}) {
    super(message);
    this.kind = kind; // http | network | timeout | client
    this.status = status;
    this.code = code;
    this.item = item; // a batch problem names the item by index
  }
  get transient() {
    return this.kind === "network" || this.kind === "timeout" ||
      this.status === 429 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function uploadTimeout(bytes) {
  // 30 s plus one second per 100 kB: generous for slow links, still an end
  return REQUEST_TIMEOUT_MS + Math.ceil(bytes / 100000) * 1000;
}

async function problemOf(response) {
  let body = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { body = await response.json(); } catch (_) { body = null; }
  }
  const message = (body && (body.detail || body.title)) ||
    `The server answered ${response.status} ${response.statusText || ""}`.trim();
  return new ApiError(message, {
    status: response.status,
    code: (body && body.code) || "",
    item: body && Number.isInteger(body.item) ? body.item : null,
  });
}

function timedOut(timeout) {
  return new ApiError(`The server did not answer within ${Math.round(timeout / 1000)} seconds.`, { kind: "timeout" });
}

// fetch with the API key, a timeout and errors as ApiError; `as`: json | blob | none;
// `json` sends an object as JSON, `body` + `type` anything else (a PNG, a form)
export async function api(path, { method = "GET", body, json, type, headers: extra, as = "json", timeout = REQUEST_TIMEOUT_MS } = {}) {
  const headers = new Headers(extra || {});
  const key = hooks.key();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  } else if (type) {
    headers.set("Content-Type", type);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  try {
    let response;
    try {
      response = await fetch(path, { method, body, headers, signal: controller.signal, cache: "no-store" });
    } catch (_) {
      throw controller.signal.aborted
        ? timedOut(timeout)
        : new ApiError("Cannot reach the Cutout server. Check your network connection.", { kind: "network" });
    }
    if (!response.ok) {
      const error = await problemOf(response);
      if (response.status === 401) hooks.onUnauthorized(error.message);
      throw error;
    }
    hooks.onAnswer();
    if (as === "json") return await response.json();
    if (as === "blob") return await response.blob();
    return response;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    // the body was cut off while reading
    throw controller.signal.aborted ? timedOut(timeout) : new ApiError("The connection to the server was lost.", { kind: "network" });
  } finally {
    clearTimeout(timer);
  }
}
