// Candidate page: its curves (accuracy and loss, training and validation, linear or log
// axis) drawn from the page's data, then kept live over the search's websocket, which
// sends only this candidate's events when asked with ?candidate=<id>.
import { lineChart } from "./lib/charts.js";
import { openSocket, frameScheduler, markDrawn } from "./lib/socket.js";
import { $, readConfig } from "./lib/util.js";

const SEARCH_ENDED = ["finished", "failed", "cancelled"];

function start(root, config) {
  let curve = {};   // epoch -> point
  let lastSeq = 0, drawnSeq = 0, search = null;

  function add(e) {
    if (e.candidate !== config.candidate_id) return;
    const old = curve[e.epoch];
    if (old && old.seq === e.seq) return;
    curve[e.epoch] = e;
    lastSeq = Math.max(lastSeq, e.seq);
  }

  function series(metric, color, labelText) {
    const pts = Object.values(curve).sort((a, b) => a.epoch - b.epoch).map((p) => ({ x: p.epoch, y: p[metric], seq: p.seq }));
    return { id: metric, label: labelText, color, points: pts };
  }

  function draw() {
    const yScale = $("cand-scale").value;
    const xMax = Math.max(config.epochs || 1, Object.keys(curve).length);
    lineChart($("accuracy-chart"),
      [series("val_accuracy", "#2458d6", "validation accuracy"), series("train_accuracy", "#e67e22", "training accuracy")],
      { metric: "accuracy", yLabel: "accuracy", yScale, xMax });
    lineChart($("loss-chart"),
      [series("val_loss", "#2458d6", "validation loss"), series("train_loss", "#e67e22", "training loss")],
      { metric: "loss", yLabel: "loss", yScale, xMax });
    $("curves-empty").hidden = Object.keys(curve).length > 0;
    root.dataset.points = Object.keys(curve).length;
    if (lastSeq > drawnSeq) { drawnSeq = lastSeq; markDrawn(lastSeq); }
  }
  const schedule = frameScheduler(draw);

  function showCandidate(c) {
    const chip = $("candidate-state");
    chip.textContent = c.state;
    chip.className = "state state-" + c.state;
    root.querySelectorAll("[data-field]").forEach((dd) => {
      const v = c[dd.dataset.field];
      if (v === undefined) return;
      if (v === null || v === "") dd.textContent = "—";
      else if (dd.dataset.digits) dd.textContent = Number(v).toFixed(Number(dd.dataset.digits));
      else if (dd.dataset.format === "int") dd.textContent = Number(v).toLocaleString();
      else dd.textContent = v;
    });
  }

  function setConnection(text, lost) {
    const el = $("connection");
    if (!lost && search && SEARCH_ENDED.indexOf(search.state) >= 0) text = `The search has ${search.state === "finished" ? "finished" : "ended"}: nothing more will change.`;
    el.textContent = text;
    el.classList.toggle("lost", Boolean(lost));
    root.dataset.connection = lost ? "lost" : "live";
  }

  function handle(event) {
    if (event.type === "snapshot") {
      event.epochs.forEach(add);
      if (event.candidates.length) showCandidate(event.candidates[0]);
      search = event.search;
      setConnection("live", false);
    } else if (event.type === "epoch") {
      add(event);
    } else if (event.type === "candidate" && event.candidate.id === config.candidate_id) {
      if (event.reset) curve = {};
      showCandidate(event.candidate);
    } else if (event.type === "search") {
      search = event.search;
      setConnection("live", false);
    }
    schedule();
  }

  config.curve.forEach(add);
  $("cand-scale").addEventListener("change", schedule);
  new ResizeObserver(schedule).observe($("accuracy-chart"));
  draw();
  openSocket({
    path: root.dataset.wsPath,
    params: () => new URLSearchParams({ candidate: config.candidate_id, after: lastSeq }),
    onMessage: handle,
    onStatus: setConnection,
  });
}

const root = document.getElementById("candidate");
if (root) start(root, readConfig("candidate-config"));
