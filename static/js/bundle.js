// Model bundle panels. While a bundle builds, its progress arrives as "bundle" events on the
// page's search websocket (the shared socket helper re-dispatches every message on
// `document`); when the build ends, the finished panel is fetched once and swapped in.
// Nothing is polled. A page without a search socket of its own opens one for the panel.
import { openSocket } from "./lib/socket.js";
import { getJson } from "./lib/util.js";

const OPEN = new Set();
let snapshots = 0;  // the first one comes with the page, which rendered the panel just before

function panelFor(candidateId) {
  return document.querySelector(`.bundle-panel[data-candidate="${candidateId}"]`);
}

async function swap(panel) {
  try {
    const s = await getJson(panel.dataset.statusUrl);
    if (s.state === "queued" || s.state === "running") { progress(panel, s.progress, s.message); return; }
    const holder = document.createElement("div");
    holder.innerHTML = s.html.trim();
    panel.replaceWith(holder.firstElementChild);
  } catch (e) { /* the next event tries again */ }
}

function progress(panel, percent, message) {
  const bar = panel.querySelector(".bundle-progress");
  const text = panel.querySelector(".bundle-message");
  const meter = panel.querySelector("[role=progressbar]");
  if (bar) bar.style.width = percent + "%";
  if (meter) meter.setAttribute("aria-valuenow", percent);
  if (text) text.textContent = percent + "% · " + (message || "Waiting for a worker");
}

function onMessage(event) {
  if (event.type === "bundle") {
    const panel = panelFor(event.bundle.candidate);
    if (!panel || panel.dataset.busy !== "true") return;
    if (event.bundle.state === "queued" || event.bundle.state === "running") {
      progress(panel, event.bundle.progress, event.bundle.message);
    } else {
      swap(panel);
    }
  } else if (event.type === "snapshot") {
    // Reconnected: a build may have ended while the socket was down.
    if (snapshots++) document.querySelectorAll('.bundle-panel[data-busy="true"]').forEach(swap);
  }
}

document.addEventListener("nasweb:message", (e) => onMessage(e.detail));

// Pages that have no search socket (none today) get one for their busy panels.
function start() {
  document.querySelectorAll('.bundle-panel[data-busy="true"][data-ws-path]').forEach((panel) => {
    if (document.getElementById("search") || document.getElementById("candidate") || OPEN.has(panel.dataset.wsPath)) return;
    OPEN.add(panel.dataset.wsPath);
    openSocket({ path: panel.dataset.wsPath, params: () => new URLSearchParams({ candidate: panel.dataset.candidate }),
                 onMessage: () => {} });
  });
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
