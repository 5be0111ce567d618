// One image opened large: the image with its stored boxes, caption, labels, counts and
// metadata, and "more like this". Search results and the answers' citations open it.
import { getJson } from "./api.js";
import { figureWithBoxes } from "./boxes.js";
import { busy, byId, bytes, clear, el } from "./dom.js";

// What the detail's buttons do: the search panel searches by the image ("More like this"),
// the ask panel asks about it ("Ask about this image"). Set by those panels.
const handlers = { moreLikeThis: () => {}, askAbout: () => {} };

export function setMoreLikeThis(handler) {
  handlers.moreLikeThis = handler;
}

export function setAskAbout(handler) {
  handlers.askAbout = handler;
}

export function setUpDetail() {
  const dialog = byId("detail");
  byId("detail-close").addEventListener("click", () => dialog.close());
  // A click on the backdrop (the dialog element itself, outside its content) closes it.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
}

/** Opens the image `imageId`; `boxes` (from an answer) replace the stored ones when given. */
export async function openDetail(imageId, { boxes = null, opener = null } = {}) {
  const dialog = byId("detail");
  const body = clear(byId("detail-body"));
  byId("detail-title").textContent = "Image";
  const status = el("p", { className: "status", role: "status" });
  body.append(status);
  if (!dialog.open) dialog.showModal();
  if (opener) dialog.addEventListener("close", () => opener.focus(), { once: true });
  let image;
  try {
    image = await busy(status, getJson(`/v1/images/${imageId}`), "Loading the image…");
  } catch (error) {
    status.textContent = error.detail;
    status.classList.add("error");
    return;
  }
  const shown = boxes || image.boxes;
  byId("detail-title").textContent = image.caption || image.source.uri || image.id;
  const info = el("dl");
  const row = (name, ...value) => info.append(el("dt", { text: name }), el("dd", {}, ...value));
  row("Caption", image.caption || "none");
  if (image.captions.length > 1) row("All captions", image.captions.join(" · "));
  row("Labels", chips(image.labels));
  const counts = Object.entries(image.counts || {});
  if (counts.length) row("Detected", counts.map(([label, count]) => `${count} ${label}`).join(", "));
  row("Boxes", shown.length ? `${shown.length} drawn` : "none");
  row("Size", `${image.width} × ${image.height} px, ${image.format}, ${bytes(image.bytes)}`);
  row("Source", `${image.source.kind}: ${image.source.uri}`);
  row("Added", new Date(image.created).toLocaleString());
  for (const [key, value] of Object.entries(image.metadata || {})) {
    row(`metadata.${key}`, typeof value === "string" ? value : JSON.stringify(value));
  }
  row("Id", el("code", { text: image.id }));
  const actions = el(
    "div",
    { className: "ask-actions" },
    el("button", {
      type: "button",
      className: "primary",
      text: "More like this",
      onclick: () => {
        dialog.close();
        handlers.moreLikeThis(image);
      },
    }),
    el("button", {
      type: "button",
      text: "Ask about this image",
      onclick: () => {
        dialog.close();
        handlers.askAbout(image);
      },
    }),
  );
  body.replaceChildren(
    figureWithBoxes({
      imageId: image.id,
      width: image.width,
      height: image.height,
      boxes: shown,
      alt: image.caption ? `Image: ${image.caption}` : `Image ${image.id}`,
    }),
    el("div", {}, info, actions),
  );
}

function chips(values) {
  if (!values.length) return "none";
  return el("ul", { className: "chips" }, ...values.map((value) => el("li", { text: value })));
}
