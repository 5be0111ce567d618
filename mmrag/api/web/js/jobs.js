// Upload and annotate: upload images (or keep a zip/tar as a job's source), start a bulk
// job, follow it from /v1/jobs/{id}/events (counts, rate, ETA, failures with reasons),
// cancel it, download its exports.
import { download, getJson, postJson, problemError, readEvents, request } from "./api.js";
import { canWrite, currentConfig } from "./auth.js";
import { busy, byId, bytes, clear, duration, el, say } from "./dom.js";
import { splitList } from "./search.js";

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz)$/i;
let archive = null; // a zip or tar chosen in the upload form: the next archive job's source
let following = null; // the AbortController of the job whose events the page reads

export function setUpJobs() {
  byId("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    upload();
  });
  byId("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startJob();
  });
  byId("job-cancel").addEventListener("click", cancelJob);
  for (const button of byId("job-exports").querySelectorAll("button[data-format]")) {
    button.addEventListener("click", () => exportJob(button));
  }
}

/** Enables the write controls only for a key that may write; shows the limits. */
export function refreshJobs() {
  const writable = canWrite();
  for (const form of [byId("upload-form"), byId("job-form")]) {
    for (const control of form.querySelectorAll("input, textarea, button, select")) {
      control.disabled = !writable;
    }
  }
  byId("job-cancel").disabled = !writable;
  byId("write-hint").hidden = writable;
  const limits = currentConfig().limits;
  byId("upload-limits").textContent =
    `Up to ${limits.max_upload_files} images of at most ${bytes(limits.max_image_bytes)} each per upload; ` +
    `archives up to ${bytes(limits.max_request_bytes)}.`;
}

/** Why these files may not be sent, or null: checked here, before a byte leaves. */
function refusal(images, archives) {
  const limits = currentConfig()?.limits;
  if (!limits) return "The page is still loading its settings; try again in a moment.";
  if (archives.length > 1) return "Choose one archive at a time.";
  if (images.length > limits.max_upload_files) {
    return `${images.length} images chosen; one upload takes at most ${limits.max_upload_files}.`;
  }
  const big = images.find((file) => file.size > limits.max_image_bytes);
  if (big) return `${big.name} is larger than ${bytes(limits.max_image_bytes)}, the most an image may be.`;
  const total = images.reduce((sum, file) => sum + file.size, 0);
  if (total > limits.max_request_bytes) {
    return `The images add up to ${bytes(total)}; one upload may be at most ${bytes(limits.max_request_bytes)}.`;
  }
  if (archives.length && archives[0].size > limits.max_request_bytes) {
    return `${archives[0].name} is larger than ${bytes(limits.max_request_bytes)}, the most an archive may be.`;
  }
  return null;
}

async function upload() {
  const status = byId("upload-status");
  say(status, ""); // the last upload's outcome goes; this one's comes
  const failures = clear(byId("upload-failures"));
  const files = [...byId("upload-files").files];
  if (!files.length) {
    say(status, "Choose images or an archive first.", true);
    return;
  }
  const archives = files.filter((file) => ARCHIVE.test(file.name));
  const images = files.filter((file) => !ARCHIVE.test(file.name));
  const refused = refusal(images, archives);
  if (refused) {
    say(status, refused, true);
    return;
  }
  const messages = [];
  if (archives.length) {
    archive = archives[0];
    byId("job-form").querySelector('input[value="archive"]').checked = true;
    messages.push(`${archive.name} (${bytes(archive.size)}) will be the job's source: start a job below.`);
  }
  if (images.length) {
    const form = new FormData();
    for (const file of images) form.append("files", file, file.name);
    const button = byId("upload-submit");
    button.disabled = true;
    try {
      const created = await busy(
        status,
        request("/v1/images", { method: "POST", body: form }).then((response) => response.json()),
        `Uploading ${images.length} image${images.length === 1 ? "" : "s"}…`,
      );
      const duplicates = created.items.filter((item) => item.duplicate).length;
      messages.unshift(
        `${created.items.length} image${created.items.length === 1 ? "" : "s"} indexed` +
          (duplicates ? ` (${duplicates} already there)` : "") +
          (created.failed.length ? `, ${created.failed.length} refused (below).` : "."),
      );
      for (const failed of created.failed) {
        failures.append(el("li", { text: `${failed.source}: ${failed.detail}` }));
      }
    } catch (error) {
      say(status, `Upload failed: ${error.detail}`, true);
      return;
    } finally {
      button.disabled = !canWrite();
    }
  }
  say(status, messages.join(" "));
}

function specOf() {
  const tasks = [];
  if (byId("job-caption").checked) tasks.push({ task: "caption" });
  if (byId("job-detect").checked) tasks.push({ task: "detect", labels: splitList(byId("job-labels").value) });
  if (byId("job-ground").checked) {
    tasks.push({ task: "ground", phrases: byId("job-phrases").value.split("\n").map((line) => line.trim()).filter(Boolean) });
  }
  if (byId("job-vqa").checked) {
    tasks.push({ task: "vqa", questions: byId("job-questions").value.split("\n").map((line) => line.trim()).filter(Boolean) });
  }
  const kind = new FormData(byId("job-form")).get("job-source");
  let source;
  if (kind === "archive") source = { kind: "archive" };
  else if (kind === "uploaded") source = { kind: "indexed", filter: { source: "upload" } };
  else source = { kind: "indexed" };
  return { source, tasks };
}

async function startJob() {
  const status = byId("job-form-status");
  const spec = specOf();
  if (!spec.tasks.length) {
    say(status, "Pick at least one task.", true);
    return;
  }
  const empty = spec.tasks.find(
    (task) => (task.labels || task.phrases || task.questions || [1]).length === 0,
  );
  if (empty) {
    say(status, `Give the ${empty.task} task what to look for.`, true);
    return;
  }
  let body;
  if (spec.source.kind === "archive") {
    if (!archive) {
      say(status, "Choose a zip or tar in the upload form first.", true);
      return;
    }
    body = new FormData();
    body.append("spec", JSON.stringify(spec));
    body.append("archive", archive, archive.name);
  }
  const button = byId("job-submit");
  button.disabled = true;
  try {
    const job = await busy(
      status,
      body
        ? request("/v1/jobs", { method: "POST", body }).then((response) => response.json())
        : postJson("/v1/jobs", spec),
      "Submitting…",
    );
    say(status, `Job ${job.id.slice(0, 8)} started.`);
    if (spec.source.kind === "archive") archive = null;
    follow(job);
  } catch (error) {
    say(status, `The job was refused: ${error.detail}`, true);
  } finally {
    button.disabled = !canWrite();
  }
}

let current = null; // the job shown
const LAST_JOB = "mmrag.job"; // its id, so a reload goes on showing it

/** After a reload, shows the job the page last followed (if the server still has it). */
export async function resumeJob() {
  const jobId = sessionStorage.getItem(LAST_JOB);
  if (!jobId) return;
  try {
    follow(await getJson(`/v1/jobs/${jobId}`));
  } catch {
    sessionStorage.removeItem(LAST_JOB); // gone (another data dir, deleted): nothing to show
  }
}

/** Shows one job by id (the one an agent's answer started): its progress, as if started here. */
export async function showJob(jobId) {
  try {
    follow(await busy(byId("job-summary"), getJson(`/v1/jobs/${jobId}`), "Loading the job…"));
  } catch (error) {
    byId("job-view").hidden = false;
    say(byId("job-summary"), `Could not show job ${jobId.slice(0, 8)}: ${error.detail || error.message}`, true);
  }
}

async function follow(job) {
  sessionStorage.setItem(LAST_JOB, job.id);
  if (following) following.abort();
  following = new AbortController();
  const { signal } = following;
  current = job;
  byId("job-view").hidden = false;
  byId("job-view").scrollIntoView({ block: "nearest" });
  byId("job-exports").hidden = true;
  clear(byId("job-failures"));
  byId("job-failures-title").hidden = true;
  showStatus(job);
  let failed = 0;
  try {
    const response = await request(`/v1/jobs/${job.id}/events`, { accept: "text/event-stream", signal });
    await readEvents(response, (name, data) => {
      if (name === "error") throw problemError(data);
      current = data;
      showStatus(data);
      if (data.counts.failed !== failed) {
        failed = data.counts.failed;
        showFailures(data.id, signal);
      }
    });
  } catch (error) {
    if (error.name === "AbortError") return;
    say(byId("job-summary"), `Lost the job's progress: ${error.detail || error.message}`, true);
  }
}

function showStatus(job) {
  const counts = job.counts;
  const settled = counts.done + counts.failed + counts.skipped;
  const progress = byId("job-progress");
  progress.max = Math.max(1, job.total);
  progress.value = settled;
  byId("job-title").textContent = `Job ${job.id.slice(0, 8)}: ${job.state}`;
  const parts = [`${settled} of ${job.total} settled`];
  if (job.rate_per_s) parts.push(`${job.rate_per_s.toFixed(1)} images/s`);
  if (job.state === "running" && job.eta_s != null) parts.push(`about ${duration(job.eta_s)} left`);
  say(byId("job-summary"), parts.join(" · "));
  byId("job-counts").replaceChildren(
    ...["done", "failed", "skipped", "running", "pending"].map((name) =>
      el("div", {}, el("dt", { text: name }), el("dd", { text: counts[name] ?? 0 })),
    ),
  );
  const finished = !["queued", "running", "cancelling"].includes(job.state);
  byId("job-cancel").hidden = finished;
  byId("job-exports").hidden = !finished;
}

async function showFailures(jobId, signal) {
  const list = byId("job-failures");
  try {
    // The first 500 items hold the failures of any job this page shows whole; larger jobs
    // list their first failures and say how many there are in the counts above.
    const page = await getJson(`/v1/jobs/${jobId}/items?limit=500`, { signal });
    const failed = page.items.filter((item) => item.state === "failed");
    list.replaceChildren(
      ...failed.map((item) => el("li", { text: `${item.key}: ${item.reason || "no reason given"}` })),
    );
    byId("job-failures-title").hidden = failed.length === 0;
  } catch (error) {
    if (error.name !== "AbortError") list.replaceChildren(el("li", { text: error.detail }));
  }
}

async function cancelJob() {
  if (!current) return;
  const button = byId("job-cancel");
  button.disabled = true;
  try {
    showStatus(await busy(byId("job-summary"), postJson(`/v1/jobs/${current.id}/cancel`, {})));
  } catch (error) {
    say(byId("job-summary"), `Could not cancel: ${error.detail}`, true);
  } finally {
    button.disabled = !canWrite();
  }
}

async function exportJob(button) {
  if (!current) return;
  const format = button.dataset.format;
  button.disabled = true;
  try {
    await busy(button, download(`/v1/jobs/${current.id}/export?format=${format}`, `job-${format}.json`));
  } catch (error) {
    say(byId("job-summary"), `The export failed: ${error.detail}`, true);
  } finally {
    button.disabled = false;
  }
}
