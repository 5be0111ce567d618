// The REST API client: one place that adds the API key, reads problem+json errors and
// parses server-sent events. Every panel calls the API through here.

let apiKey = null; // memory only: never in a URL, localStorage or sessionStorage

export function setKey(key) {
  apiKey = key || null;
  for (const url of blobUrls.values()) url.then(URL.revokeObjectURL, () => {});
  blobUrls.clear();
}

export function hasKey() {
  return apiKey !== null;
}

/** An error the API answered with (problem+json), or a network failure. */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail || title;
  }
}

function headers(extra = {}) {
  const all = { ...extra };
  if (apiKey) all.Authorization = `Bearer ${apiKey}`;
  return all;
}

/** Listeners told of every 401 (the key is wrong or missing: ask for one). */
const unauthorized = [];
export function onUnauthorized(listener) {
  unauthorized.push(listener);
}

/**
 * fetch() with the key; a non-2xx answer throws ApiError with the problem's detail (never a
 * stack trace: the server sends none, and an unreadable body becomes the status text).
 */
export async function request(path, { method = "GET", json, body, accept, signal } = {}) {
  const extra = {};
  if (json !== undefined) extra["Content-Type"] = "application/json";
  if (accept) extra.Accept = accept;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(extra),
      body: json !== undefined ? JSON.stringify(json) : body,
      signal,
      credentials: "same-origin",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Network error", "The server could not be reached. Is it running?");
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

export async function getJson(path, options = {}) {
  return (await request(path, options)).json();
}

export async function postJson(path, json, options = {}) {
  return (await request(path, { ...options, method: "POST", json })).json();
}

async function problemOf(response) {
  let title = response.statusText || "Error";
  let detail = `The server answered ${response.status}.`;
  try {
    const problem = await response.json();
    if (typeof problem.title === "string") title = problem.title;
    if (typeof problem.detail === "string") detail = problem.detail;
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  if (response.status === 401) for (const listener of unauthorized) listener(detail);
  if (response.status === 503) {
    const wait = response.headers.get("Retry-After");
    if (wait) detail = `${detail} (try again in about ${wait} s)`;
  }
  return new ApiError(response.status, title, detail);
}

/** A problem+json body delivered as an SSE `error` event, as an ApiError. */
export function problemError(problem) {
  return new ApiError(problem.status || 500, problem.title || "Error", problem.detail);
}

/**
 * Reads a text/event-stream response, calling onEvent(name, data) per event (data parsed as
 * JSON). EventSource cannot POST or send the key, so the stream is read from fetch().
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // Line ends may be CRLF, CR or LF; a CR at a chunk's end waits for what follows it.
      const held = !done && buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n") + held;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block, onEvent);
      }
      if (done) break;
    }
    if (buffer.trim()) dispatch(buffer, onEvent);
  } finally {
    // A listener that throws (an error event) or a stream given up must not stay open.
    reader.cancel().catch(() => {});
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  onEvent(name, JSON.parse(data.join("\n")));
}

// -- images --------------------------------------------------------------------------------
// Without auth an <img> loads the URL itself (the browser caches it: ids are content ids).
// With auth an <img src> cannot carry the key, so the bytes are fetched with it and shown
// through a blob: URL, kept per path (one fetch even when two views ask at once), the
// oldest let go past a cap so a long session of scrolling does not hold every image.
const blobUrls = new Map(); // path -> Promise of a blob: URL, oldest first
const MAX_BLOBS = 400;

export function imageSrc(path) {
  if (!apiKey) return Promise.resolve(path);
  let url = blobUrls.get(path);
  if (url) {
    blobUrls.delete(path); // most recently used goes last
  } else {
    url = request(path).then(async (response) => URL.createObjectURL(await response.blob()));
    url.catch(() => blobUrls.delete(path)); // a failure is tried again next time
  }
  blobUrls.set(path, url);
  while (blobUrls.size > MAX_BLOBS) {
    const [oldest, stale] = blobUrls.entries().next().value;
    blobUrls.delete(oldest);
    stale.then(URL.revokeObjectURL, () => {});
  }
  return url;
}

/** Sets img's src to the image at `path`; failures leave the reserved box and a title. */
export function showImage(img, path) {
  imageSrc(path).then(
    (src) => {
      img.src = src;
    },
    (error) => {
      img.title = `The image could not be loaded: ${error.detail || error.message}`;
    },
  );
}

/** Downloads a response as a file (the key travels in the header, never in a link). */
export async function download(path, fallbackName) {
  const response = await request(path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
