// In-epoch progress and the training log, over /ws/live/searches/<id>/ (channel layer only;
// the log's stored lines come first on a candidate page, so a reload or reconnect misses none).
// Candidate page: "epoch 2 · batch 13 of 28" and the log, tail-followed like `tail -f`.
// Search page: a "Training now" list of the running candidates with their progress.
import { openSocket } from "./lib/socket.js";

const ENDED = new Set(["finished", "failed", "cancelled", "pruned", "skipped", "ended"]);
const card = document.getElementById("live-card") || document.getElementById("training-now");

function describe(e) {
  if (e.phase === "training") return `epoch ${e.epoch} · batch ${e.batch} of ${e.batches}`;
  if (ENDED.has(e.phase)) return `done: ${e.phase}`;
  return e.phase ? `working: ${e.phase}` : null;
}

// --- candidate page -----------------------------------------------------------------
const log = document.getElementById("log");
let lastLine = 0;
const have = new Set();
if (log) for (const span of log.querySelectorAll("span[data-line]")) {
  have.add(Number(span.dataset.line));
  lastLine = Math.max(lastLine, Number(span.dataset.line));
}
let complete = lastLine; // every line up to this one is shown (what the page was drawn with counts as whole)
let socket = null;

function lineSpan(n, text) {
  const span = document.createElement("span");
  span.dataset.line = n;
  span.textContent = text + "\n";
  return span;
}

function appendLines(lines) {
  const follow = document.getElementById("log-follow")?.checked;
  const fresh = lines.filter(([n]) => n > complete && !have.has(n));
  if (!fresh.length) return askForGap();
  for (const [n, text] of fresh) {
    const later = n < lastLine ? [...log.children].find((s) => Number(s.dataset.line) > n) : null;
    log.insertBefore(lineSpan(n, text), later || null);
    have.add(n);
    lastLine = Math.max(lastLine, n);
  }
  while (have.has(complete + 1)) complete += 1;
  document.getElementById("log-empty").hidden = true;
  if (follow) log.scrollTop = log.scrollHeight;
  askForGap();
}

// Lines sent live before this page's socket opened are missing until stored (every few seconds,
// and when the candidate ends): ask the server for the stored lines after the last whole line.
let gapTries = 0;
let gapTimer = null;
function askForGap() {
  if (complete >= lastLine) { gapTries = 0; return; }
  if (gapTimer || gapTries >= 10) return;
  gapTimer = setTimeout(() => {
    gapTimer = null;
    gapTries += 1;
    socket?.send({ type: "log", after: complete });
  }, gapTries ? 2500 : 0);
}

function onCandidateEvent(e) {
  if (e.lines) appendLines(e.lines);
  const text = e.type === "progress" ? describe(e) : null;
  if (text) {
    const box = document.getElementById("in-epoch");
    box.replaceChildren(text);
    if (e.phase === "training") {
      const bar = document.createElement("progress");
      bar.max = e.batches;
      bar.value = e.batch;
      bar.setAttribute("aria-label", "batches done in this epoch");
      box.append(" ", bar);
    }
  }
}

// --- search page ----------------------------------------------------------------------
function onSearchEvent(e) {
  if (e.type !== "progress") return;
  const list = document.getElementById("training-now-list");
  let item = list.querySelector(`li[data-candidate="${e.candidate}"]`);
  if (ENDED.has(e.phase)) {
    item?.remove();
  } else {
    if (!item) {
      item = document.createElement("li");
      item.dataset.candidate = e.candidate;
      const a = document.createElement("a");
      a.href = card.dataset.candidateUrl.replace("/0/", `/${e.candidate}/`);
      a.textContent = `#${e.index}`;
      const what = document.createElement("span");
      what.className = "what";
      item.append(a, " ", what);
      list.append(item);
    }
    item.querySelector(".what").textContent = describe(e) || "working";
  }
  document.getElementById("training-now-empty").hidden = list.children.length > 0;
}

// The page's own query (a candidate page's `candidate=`) plus, on a candidate page, the last whole
// log line, recomputed at every reconnect so the server resends only what is missing.
function liveSocket() {
  const [path, query = ""] = card.dataset.liveWs.split("?");
  return openSocket({
    path, firstRetryMs: 1000, maxRetryMs: 30000,
    params: () => {
      const params = new URLSearchParams(query);
      if (log) params.set("after", complete);
      return params;
    },
    onMessage: log ? onCandidateEvent : onSearchEvent,
    onStatus: (text, lost) => { card.dataset.connection = lost ? "lost" : "live"; },
  });
}

if (card) socket = liveSocket();
