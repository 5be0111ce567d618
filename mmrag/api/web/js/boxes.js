// An image with boxes drawn over it. The SVG's viewBox is the image's own pixel grid
// (0 0 width height) and it covers the image exactly, so a box given in pixels of the
// original lands in the right place at any display size; the figure reserves the image's
// aspect ratio before it loads, so nothing jumps.
import { showImage } from "./api.js";
import { el, svg } from "./dom.js";

/**
 * A figure for the image `imageId` (`width` x `height` pixels) with `boxes`
 * ([{label, score, box: [x1, y1, x2, y2]}]); `alt` describes it for screen readers.
 */
export function figureWithBoxes({ imageId, width, height, boxes = [], alt, src }) {
  // Tiny images (the offline shapes are 64 px) are blown up: show their pixels, not a blur.
  const img = el("img", { alt, decoding: "async", className: pixelated(width, height) });
  const figure = el("div", { className: "figure", "data-image-id": imageId });
  figure.style.aspectRatio = `${width} / ${height}`;
  const overlay = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": boxes.length ? describe(boxes) : "no boxes",
  });
  // Labels scale with the image; a fixed share of its larger side stays readable.
  const fontSize = Math.max(width, height) / 14;
  const colours = new Map();
  for (const found of boxes) {
    const [x1, y1, x2, y2] = found.box;
    if (!colours.has(found.label)) colours.set(found.label, colours.size % 6);
    const colour = `box-${colours.get(found.label)}`;
    const title = `${found.label}${found.score != null ? ` ${found.score.toFixed(2)}` : ""}`;
    overlay.append(
      svg(
        "rect",
        {
          className: colour,
          x: x1,
          y: y1,
          width: Math.max(0, x2 - x1),
          height: Math.max(0, y2 - y1),
          "data-label": found.label,
        },
        svg("title", { text: title }),
      ),
      // Over the box, kept inside the image: a box in the right half labels from its right.
      svg("text", {
        x: x1 > width / 2 ? x2 : x1,
        y: Math.max(fontSize, y1 - fontSize * 0.25),
        "text-anchor": x1 > width / 2 ? "end" : "start",
        "font-size": fontSize,
        text: found.label,
      }),
    );
  }
  figure.append(img, overlay);
  showImage(img, src || `/v1/images/${imageId}/content`);
  return figure;
}

/** The class that keeps a small image's pixels sharp when it is shown much larger. */
export function pixelated(width, height) {
  return Math.max(width, height) <= 128 ? "pixelated" : null;
}

function describe(boxes) {
  return boxes
    .map((found) => `${found.label} at ${found.box.map((value) => Math.round(value)).join(", ")}`)
    .join("; ");
}
