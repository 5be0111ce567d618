// DOM helpers. Everything the page shows from the server (captions, labels, metadata,
// answers, reasons) is untrusted: it only ever goes in through textContent or an attribute
// value, never innerHTML, so `<img src=x onerror=...>` in a caption shows as text.

const SVG_NS = "http://www.w3.org/2000/svg";

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element (attributes as given, children as for el). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "className") node.setAttribute("class", value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page lacks #${id}`);
  return node;
}

/** Shows the message in a status line (role=status), as an error when `error` is set. */
export function say(node, message, error = false) {
  node.textContent = message;
  node.classList.toggle("error", error);
}

const busyWith = new WeakMap(); // node -> the latest wait shown on it

/**
 * Runs `work` (a promise or a function returning one) with `node` marked busy; the spinner
 * appears only when the wait passes 200 ms, so quick answers do not flicker.
 */
export async function busy(node, work, message = "") {
  const wait = {};
  busyWith.set(node, wait);
  const timer = setTimeout(() => {
    node.classList.add("loading");
    if (message) node.textContent = message;
  }, 200);
  node.setAttribute("aria-busy", "true");
  try {
    return await (typeof work === "function" ? work() : work);
  } finally {
    clearTimeout(timer);
    // A newer wait on the same node (a search that replaced this one) keeps its spinner.
    if (busyWith.get(node) === wait) {
      node.classList.remove("loading");
      node.removeAttribute("aria-busy");
    }
  }
}

/** A byte count as people read it. */
export function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(0)} kB`;
  return `${(count / 1024 / 1024).toFixed(1)} MB`;
}

/** Seconds as "1 min 5 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${total % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
