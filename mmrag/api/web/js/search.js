// Search: text, an image dropped or pasted (image to image), or "more like this" (an indexed
// image); the target and filters as controls; a grid of thumbnails, paged by scrolling.
import { postJson, showImage } from "./api.js";
import { currentConfig } from "./auth.js";
import { busy, byId, bytes, clear, el, say } from "./dom.js";
import { figureWithBoxes, pixelated } from "./boxes.js";
import { openDetail, setMoreLikeThis } from "./detail.js";

const PAGE = 24;

const state = {
  query: null, // the request without limit/offset
  offset: 0,
  exhausted: true,
  loading: false,
  image: null, // {name, b64, previewUrl} of a dropped or chosen image
  generation: 0, // a newer search makes older answers stale
  controller: null, // aborts the page still loading when a new search starts
};

export function setUpSearch(showPanel) {
  const form = byId("search-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  byId("search-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) useImage(file);
    event.target.value = "";
  });
  byId("query-image-clear").addEventListener("click", () => {
    clearImage();
    byId("search-text").focus();
  });
  const zone = byId("drop-zone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = [...event.dataTransfer.files].find((item) => item.type.startsWith("image/"));
    if (file) useImage(file);
    else say(byId("search-status"), "Drop an image file to search with it.", true);
  });
  // Pasting an image anywhere on the search panel searches with it.
  byId("panel-search").addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((item) =>
      item.type.startsWith("image/"),
    );
    if (file) {
      event.preventDefault();
      useImage(file);
    }
  });
  byId("results-more").addEventListener("click", () => nextPage());
  // Infinite scroll: the sentinel under the grid loads the next page as it comes into view;
  // the "Load more" button does the same from the keyboard.
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) nextPage();
  }, { rootMargin: "400px" }).observe(byId("results-sentinel"));
  setMoreLikeThis((image) => {
    showPanel("search");
    clearImage();
    byId("search-text").value = "";
    runSearch({ image_id: image.id }, `images like ${image.caption || image.id}`);
  });
}

function useImage(file) {
  const limit = currentConfig()?.limits.max_image_bytes;
  if (limit === undefined) {
    say(byId("search-status"), "The page is still loading its settings; try again in a moment.", true);
    return;
  }
  if (file.size > limit) {
    say(byId("search-status"), `${file.name} is larger than ${bytes(limit)}, the most an image may be.`, true);
    return;
  }
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    const dataUrl = String(reader.result);
    clearImage();
    state.image = {
      name: file.name || "pasted image",
      b64: dataUrl.slice(dataUrl.indexOf(",") + 1),
      previewUrl: URL.createObjectURL(file),
    };
    byId("query-image-preview").src = state.image.previewUrl;
    byId("query-image-name").textContent = state.image.name;
    byId("query-image").hidden = false;
    byId("drop-hint").hidden = true;
    runSearch();
  });
  reader.addEventListener("error", () =>
    say(byId("search-status"), `${file.name} could not be read.`, true),
  );
  reader.readAsDataURL(file);
}

function clearImage() {
  if (state.image) URL.revokeObjectURL(state.image.previewUrl);
  state.image = null;
  byId("query-image").hidden = true;
  byId("drop-hint").hidden = false;
}

function filterOf() {
  const filter = {};
  const labels = splitList(byId("filter-labels").value);
  if (labels.length) filter.labels = { any: labels };
  const minimum = Number.parseInt(byId("filter-count-min").value, 10);
  const counted = byId("filter-count-label").value.trim().toLowerCase();
  if (counted && minimum > 0) {
    // The index keys counts by label in lower case, words joined by "_" (a count key).
    const key = counted.match(/[a-z0-9]+/g)?.join("_");
    if (key) filter.counts = { [key]: { gte: minimum } };
  }
  const source = byId("filter-source").value;
  if (source) filter.source = source;
  return Object.keys(filter).length ? filter : undefined;
}

export function splitList(text) {
  return text
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Starts a new search from the form, or from `given` ({image_id}) for "more like this". */
export function runSearch(given = null, describing = null) {
  const target = new FormData(byId("search-form")).get("target") || "image";
  const query = { target, filter: filterOf(), ...(given || {}) };
  const text = byId("search-text").value.trim();
  if (!given) {
    if (state.image) query.image_b64 = state.image.b64;
    else if (text) query.text = text;
    else {
      say(byId("search-status"), "Type what to look for, or drop an image.", true);
      byId("search-text").focus();
      return;
    }
  }
  // Hybrid adds BM25 over captions, which needs words: an image query searches images.
  if (query.target === "hybrid" && !query.text) query.target = "image";
  state.query = query;
  state.offset = 0;
  state.exhausted = false;
  state.generation += 1; // a page of the last search still loading is dropped when it comes
  state.controller?.abort(); // and its request (and its spinner) stop now
  state.loading = false;
  state.describing = describing || (state.image ? `images like ${state.image.name}` : `“${text}”`);
  clear(byId("results"));
  nextPage();
}

async function nextPage() {
  if (!state.query || state.loading || state.exhausted) return;
  const generation = state.generation;
  const status = byId("search-status");
  const more = byId("results-more");
  state.loading = true;
  more.disabled = true;
  status.classList.remove("error");
  try {
    const body = { ...state.query, limit: PAGE, offset: state.offset };
    state.controller = new AbortController();
    const signal = state.controller.signal;
    const found = await busy(status, postJson("/v1/search", body, { signal }), "Searching…");
    if (generation !== state.generation) return;
    state.offset += found.results.length;
    state.exhausted = found.results.length < PAGE;
    const grid = byId("results");
    const first = grid.children.length;
    grid.append(...found.results.map((result, index) => card(result, first + index)));
    const shown = grid.children.length;
    say(
      status,
      shown
        ? `${shown} result${shown === 1 ? "" : "s"} for ${state.describing} (${found.took_ms.toFixed(0)} ms)`
        : `Nothing found for ${state.describing}.`,
    );
  } catch (error) {
    if (generation !== state.generation) return;
    state.exhausted = true;
    say(status, error.detail || String(error), true);
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      more.disabled = false;
      more.hidden = state.exhausted;
    }
  }
}

function thumbnail(result, position) {
  const alt = result.caption ? `Image: ${result.caption}` : `Image ${position + 1}, no caption`;
  if (result.region) {
    // Found by one of its regions: the crop that matched is boxed on the thumbnail, so the
    // hit shows what it found rather than saying so.
    const { box, label, match } = result.region;
    const figure = figureWithBoxes({
      imageId: result.id,
      width: result.width,
      height: result.height,
      boxes: [{ label, score: match, box }],
      alt,
      src: result.thumbnail_url,
    });
    figure.classList.add(result.width >= result.height ? "wide" : "tall");
    return el("span", { className: "thumb boxed" }, figure);
  }
  const img = el("img", {
    alt,
    loading: position < 12 ? "eager" : "lazy",
    decoding: "async",
    className: pixelated(result.width, result.height),
  });
  showImage(img, result.thumbnail_url);
  return el("span", { className: "thumb" }, img);
}

function card(result, position) {
  const caption = result.caption || result.labels.join(", ") || "no caption";
  const button = el(
    "button",
    {
      type: "button",
      "aria-label": `Open result ${position + 1}: ${caption}, score ${result.score.toFixed(3)}`,
    },
    thumbnail(result, position),
    el(
      "span",
      { className: "meta" },
      el("span", { className: "caption", text: caption }),
      el("span", { className: "score", text: `score ${result.score.toFixed(3)}` }),
    ),
  );
  button.addEventListener("click", () => openDetail(result.id, { opener: button }));
  return el("li", { className: "result", "data-image-id": result.id }, button);
}
