// Ask: a conversation over POST /v1/ask with stream: true. The plan shows first, each tool
// step as it runs, the answer as it streams; every [image id] in the answer becomes a
// thumbnail that opens the image, and grounded claims show the image with its boxes.
// The thread id and the transcript live in sessionStorage (never the key), so a reload
// keeps the conversation and a follow-up continues it.
import { readEvents, problemError, request, showImage, getJson } from "./api.js";
import { figureWithBoxes } from "./boxes.js";
import { openDetail } from "./detail.js";
import { busy, byId, el, say } from "./dom.js";

const STORE = "mmrag.conversation";
const CITATION = /\[([0-9a-f]{32})\]/g;
const PROPOSAL_THUMBNAILS = 6; // a proposed job shows this many of its images

let conversation = load();
let running = false;
let streaming = null; // the AbortController of the answer being read, if any
let about = null; // the image the next question is about ({id, caption}), or the collection

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (saved && Array.isArray(saved.turns)) return saved;
  } catch {
    // A damaged entry starts a new conversation.
  }
  return { threadId: null, turns: [] };
}

function save() {
  sessionStorage.setItem(STORE, JSON.stringify(conversation));
}

let openJob = () => {}; // shows a job in the jobs view (main.js wires it)

/** `showJob(jobId)` opens a job the agent started in the page's jobs view. */
export function setUpAsk({ showJob }) {
  openJob = showJob;
  const form = byId("ask-form");
  const input = byId("ask-text");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(input.value.trim());
  });
  // Enter sends, Shift+Enter starts a new line.
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  byId("ask-image-clear").addEventListener("click", () => {
    setAbout(null);
    input.focus();
  });
  const startOver = () => {
    streaming?.abort(); // the old answer must not land in the new conversation
    conversation = { threadId: null, turns: [] };
    save();
    byId("chat").replaceChildren();
  };
  byId("ask-new").addEventListener("click", () => {
    startOver();
    input.focus();
  });
  document.addEventListener("mmrag:signed-out", startOver);
  for (const turn of conversation.turns) {
    const view = turnView(turn.question, turn.about);
    renderAnswer(view, turn);
  }
}

/** The next question is about `image` (from a result's "Ask about this image"). */
export function askAbout(image) {
  setAbout({ id: image.id, caption: image.caption || image.source.uri || image.id });
  byId("ask-text").focus();
}

function setAbout(image) {
  about = image;
  byId("ask-image").hidden = !image;
  if (!image) return;
  showImage(byId("ask-image-preview"), `/v1/images/${image.id}/thumbnail`);
  byId("ask-image-name").textContent = `About: ${image.caption}`;
}

async function ask(question) {
  if (!question || running) return;
  byId("ask-text").value = "";
  const body = { question, stream: true };
  if (conversation.threadId) body.thread_id = conversation.threadId;
  if (about) body.image_id = about.id;
  if (await converse(question, about, body)) setAbout(null); // follow-ups go on in the thread, which knows the image
}

/**
 * One turn: sends `body` to /v1/ask as a stream, shows the plan, steps and answer as they come
 * and keeps the turn. The answer, or null when it failed (the turn says why) or was given up.
 */
async function converse(question, image, body) {
  running = true;
  const submit = byId("ask-form").querySelector("button[type=submit]");
  submit.disabled = true;
  const view = turnView(question, image);
  view.node.scrollIntoView({ block: "nearest" });
  const asked = conversation;
  const controller = new AbortController();
  streaming = controller;
  try {
    const response = await busy(
      view.status,
      request("/v1/ask", {
        method: "POST",
        json: body,
        accept: "text/event-stream",
        signal: controller.signal,
      }),
      body.confirm === undefined ? "Planning…" : "Sending your answer…",
    );
    let result = null;
    await busy(view.status, () =>
      readEvents(response, (name, data) => {
        if (name === "plan") {
          showPlan(view, data);
          view.status.textContent = "Running the plan…";
        } else if (name === "tool_start") stepState(view, data, "running");
        else if (name === "tool_end") stepState(view, data, data.error ? "failed" : "done");
        else if (name === "token") {
          view.status.textContent = "";
          view.answer.append(data.text);
        }
        else if (name === "answer") result = data;
        else if (name === "error") throw problemError(data);
      }),
    );
    if (asked !== conversation) return null; // a new conversation started meanwhile
    if (!result) throw new Error("The answer stream ended early.");
    conversation.threadId = result.thread_id;
    const turn = { question, about: image, result: keep(result) };
    conversation.turns.push(turn);
    save();
    renderAnswer(view, turn);
    return result;
  } catch (error) {
    if (error.name !== "AbortError") say(view.status, error.detail || String(error.message || error), true);
    return null;
  } finally {
    if (streaming === controller) streaming = null;
    running = false;
    submit.disabled = false;
    byId("ask-text").focus();
  }
}

/** What a turn keeps across reloads: the answer and its evidence, not the whole trace. */
function keep(result) {
  return {
    answer: result.answer,
    citations: result.citations,
    weak_evidence: result.weak_evidence,
    plan: result.plan,
    trace: result.trace.map(({ step, tool, image_ids, ms, error, note }) => ({
      step,
      tool,
      image_ids,
      ms,
      error,
      note,
    })),
    thread_id: result.thread_id,
    pending: result.pending ?? null, // a proposed job, until it is answered
    job_id: startedJob(result),
  };
}

/** The id of the job this answer started, if it started one (the start_job step's outcome). */
function startedJob(result) {
  if (result.job_id) return result.job_id; // a kept turn
  for (const entry of result.trace || []) {
    const outcome = entry.tool === "start_job" ? (entry.outputs || [])[0] : null;
    if (outcome?.started) return outcome.job_id;
  }
  return null;
}

function turnView(question, image = null) {
  const steps = el("ol", { className: "steps", "aria-label": "Plan" });
  const answer = el("p", { className: "answer" });
  const status = el("p", { className: "status", role: "status" });
  const evidence = el("div", { className: "evidence" });
  const node = el(
    "li",
    { className: "turn" },
    el(
      "p",
      { className: "question" },
      question,
      image ? el("span", { className: "hint", text: ` (about ${image.caption})` }) : null,
    ),
    steps,
    status,
    answer,
    evidence,
  );
  byId("chat").append(node);
  return { node, steps, answer, status, evidence };
}

function describeStep(step) {
  const args = Object.entries(step.args || {})
    .filter(([name]) => name !== "on")
    .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(", ") : value}`);
  return `${step.tool}${args.length ? ` (${args.join("; ")})` : ""}`;
}

function showPlan(view, plan) {
  view.steps.replaceChildren(
    ...plan.steps.map((step, index) =>
      el("li", { "data-step": index + 1, text: describeStep(step) }),
    ),
  );
}

function stepState(view, entry, state) {
  const item = view.steps.querySelector(`[data-step="${Number(entry.step)}"]`);
  if (!item) return;
  item.className = state;
  const base = item.textContent.replace(/ — .*$/, "");
  let extra = "";
  if (state === "running") {
    const count = (entry.image_ids || []).length;
    extra = count ? `running on ${count} image${count === 1 ? "" : "s"}…` : "running…";
  } else if (state === "failed") extra = `failed: ${entry.error}`;
  else extra = `${Math.round(entry.ms || 0)} ms${entry.note ? `; ${entry.note}` : ""}`;
  item.textContent = `${base} — ${extra}`;
}

function renderAnswer(view, turn) {
  const result = turn.result;
  if (!view.steps.children.length) showPlan(view, result.plan);
  for (const entry of result.trace) {
    stepState(view, entry, entry.error ? "failed" : "done");
  }
  view.status.textContent = result.weak_evidence ? "The evidence is weak." : "";
  view.status.classList.toggle("weak", result.weak_evidence);
  view.answer.replaceChildren(...withCitations(result.answer));
  renderEvidence(view.evidence, result.citations);
  if (result.pending) view.node.append(proposalView(turn));
  if (result.job_id) {
    const show = el("button", { type: "button", className: "job-link", text: `Show job ${result.job_id.slice(0, 8)}` });
    show.addEventListener("click", () => openJob(result.job_id));
    view.node.append(el("p", {}, show));
  }
}

/**
 * A job the agent proposes, readably: the task, how many images, a few of them, and the
 * buttons that answer it in the same thread (confirm: true starts it, false drops it).
 */
function proposalView(turn) {
  const pending = turn.result.pending;
  const what = pending.task === "caption" ? "Caption" : `Detect ${(pending.labels || []).join(", ")} in`;
  const count = `${pending.images} image${pending.images === 1 ? "" : "s"}`;
  const shown = pending.image_ids.slice(0, PROPOSAL_THUMBNAILS);
  const more = pending.image_ids.length - shown.length;
  const start = el("button", { type: "button", className: "primary", text: "Start job" });
  const skip = el("button", { type: "button", text: "Don't" });
  const status = el("p", { className: "status", role: "status" });
  const node = el(
    "section",
    { className: "proposal", "aria-label": "Proposed job" },
    el("p", { className: "proposal-task", text: `Proposed job: ${what} ${count}.` }),
    el("div", { className: "proposal-images" }, ...shown.map(citationButton), more > 0 ? `and ${more} more` : null),
    el("div", { className: "ask-actions" }, start, skip),
    status,
  );
  const answer = async (confirm) => {
    if (running) {
      say(status, "Wait for the answer being written first.", true);
      return;
    }
    start.disabled = skip.disabled = true;
    say(status, "");
    const body = {
      question: confirm ? "Start the job." : "Don't start the job.",
      thread_id: conversation.threadId,
      confirm,
      stream: true,
    };
    const result = await busy(status, converse(body.question, null, body), "Waiting for the answer…");
    if (!result) {
      // The answer's turn says why (a read-only key's 403, say): the choice stays open.
      start.disabled = skip.disabled = false;
      return;
    }
    turn.result.pending = null; // answered: a reload shows no buttons for it
    save();
    node.replaceChildren(el("p", { className: "proposal-task", text: confirm ? "You started this job." : "You dropped this job." }));
  };
  start.addEventListener("click", () => answer(true));
  skip.addEventListener("click", () => answer(false));
  return node;
}

/** The answer's text with each [image id] as a thumbnail button opening that image. */
function withCitations(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    parts.push(text.slice(last, match.index));
    parts.push(citationButton(match[1]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}

function citationButton(imageId) {
  const img = el("img", { alt: `cited image ${imageId.slice(0, 8)}` });
  showImage(img, `/v1/images/${imageId}/thumbnail`);
  const button = el(
    "button",
    { type: "button", className: "cite", "data-image-id": imageId, title: `Open image ${imageId}` },
    img,
  );
  button.addEventListener("click", () => openDetail(imageId, { opener: button }));
  return button;
}

/**
 * Grounded claims: each cited image with a box, drawn with all of its cited boxes. Every
 * figure's place is held (a grey square) while its size is fetched, all at once.
 */
async function renderEvidence(container, citations) {
  const byImage = new Map();
  for (const citation of citations) {
    if (!citation.box) continue;
    if (!byImage.has(citation.image_id)) byImage.set(citation.image_id, []);
    byImage.get(citation.image_id).push({
      label: citation.label || "",
      score: citation.score ?? null,
      box: citation.box,
    });
  }
  container.replaceChildren();
  await Promise.all([...byImage].map(([imageId, boxes]) => evidenceFigure(container, imageId, boxes)));
}

async function evidenceFigure(container, imageId, boxes) {
  const holder = el(
    "figure",
    { "data-image-id": imageId },
    el("div", { className: "figure-placeholder" }),
  );
  container.append(holder);
  try {
    const image = await busy(holder, getJson(`/v1/images/${imageId}`));
    const figure = figureWithBoxes({
      imageId,
      width: image.width,
      height: image.height,
      boxes,
      alt: `Evidence: ${boxes.map((found) => found.label).join(", ")} in image ${imageId.slice(0, 8)}`,
    });
    const open = el("button", { type: "button", className: "quiet", text: "Open" });
    open.addEventListener("click", () => openDetail(imageId, { boxes, opener: open }));
    const labels = boxes
      .map((found) => `${found.label}${found.score != null ? ` (${found.score.toFixed(2)})` : ""}`)
      .join(", ");
    holder.replaceChildren(figure, el("figcaption", {}, labels, " ", open));
  } catch (error) {
    holder.replaceChildren(el("figcaption", { className: "error", text: error.detail || String(error) }));
  }
}
