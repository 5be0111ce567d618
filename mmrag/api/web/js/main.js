// The page's entry point: tabs, the error banner, then auth and the three panels.
import { askAbout, setUpAsk } from "./ask.js";
import { start } from "./auth.js";
import { setAskAbout, setUpDetail } from "./detail.js";
import { byId } from "./dom.js";
import { refreshJobs, resumeJob, setUpJobs, showJob } from "./jobs.js";
import { setUpSearch } from "./search.js";

const PANELS = ["search", "ask", "jobs"];

function showPanel(name, focus = false) {
  for (const panel of PANELS) {
    const tab = byId(`tab-${panel}`);
    const selected = panel === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    byId(`panel-${panel}`).hidden = !selected;
    if (selected && focus) tab.focus();
  }
  // The tab is in the fragment (never anything secret), so a reload stays on it.
  history.replaceState(null, "", name === "search" ? location.pathname : `#${name}`);
}

function setUpTabs() {
  for (const [index, name] of PANELS.entries()) {
    const tab = byId(`tab-${name}`);
    tab.addEventListener("click", () => showPanel(name));
    // Arrow keys move between tabs, as the WAI-ARIA tabs pattern has it.
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) {
        event.preventDefault();
        showPanel(PANELS[(index + step + PANELS.length) % PANELS.length], true);
      } else if (event.key === "Home") showPanel(PANELS[0], true);
      else if (event.key === "End") showPanel(PANELS[PANELS.length - 1], true);
    });
  }
  const wanted = location.hash.slice(1);
  showPanel(PANELS.includes(wanted) ? wanted : "search");
}

export function showAlert(message) {
  byId("alert-text").textContent = message;
  byId("alert").hidden = false;
}

async function main() {
  setUpTabs();
  byId("alert-close").addEventListener("click", () => {
    byId("alert").hidden = true;
  });
  setUpDetail();
  setUpSearch(showPanel);
  setAskAbout((image) => {
    showPanel("ask");
    askAbout(image);
  });
  setUpJobs();
  try {
    await start(() => {
      refreshJobs();
      document.body.dataset.ready = "true";
    });
    // The conversation and the last job are read once a key (if one is needed) can.
    setUpAsk({
      showJob: (jobId) => {
        showPanel("jobs");
        showJob(jobId);
      },
    });
    resumeJob();
  } catch (error) {
    showAlert(`The page could not start: ${error.detail || error.message}`);
  }
}

main();
