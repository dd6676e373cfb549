// The live search page: one websocket brings a bounded snapshot (state and counts, one
// leaderboard page, the curves the page draws), then every change as an event. Events only
// update what the page knows; it redraws at the next animation frame, once however many
// events came before it. Nothing is polled.
import { openSocket, frameScheduler, markDrawn } from "../lib/socket.js";
import { $ } from "../lib/util.js";
import { Curves } from "./curves.js";
import { Leaderboard, queryParams } from "./leaderboard.js";
import { Pareto } from "./pareto.js";
import { Progress } from "./progress.js";
import { SEARCH_ENDED, newState } from "./state.js";

export class SearchPage {
  constructor(root, config) {
    this.root = root; this.config = config;
    this.state = newState(config);
    const at = (template) => (id) => template.replace("/candidates/0/", "/candidates/" + id + "/");
    this.urls = { candidate: at(config.urls.candidate), checkpoint: at(config.urls.checkpoint) };
    this.curves = new Curves(this);
    this.board = new Leaderboard(this);
    this.pareto = new Pareto(this);
    this.progress = new Progress(this);
    this.schedule = frameScheduler(() => this.draw());
    this.socket = null;
  }

  upsert(c) {
    const cands = this.state.cands, prev = cands[c.id];
    cands[c.id] = prev ? Object.assign(prev, c, { placeholder: false }) : Object.assign({}, c);
    this.curves.topDirty = true;
    return cands[c.id];
  }

  send(message) { return this.socket ? this.socket.send(message) : false; }

  start() {
    this.board.syncForm();
    this.board.wire();
    this.curves.wire();
    this.pareto.wire();
    document.querySelectorAll("form[data-confirm]").forEach((form) => form.addEventListener("submit", (event) => {
      if (!confirm(form.dataset.confirm)) event.preventDefault();
    }));
    new ResizeObserver(() => { this.curves.dirty = this.pareto.dirty = this.progress.dirty = true; this.schedule(); })
      .observe($("chart"));
    this.socket = openSocket({
      path: this.root.dataset.wsPath,
      params: () => this.connectParams(),
      onMessage: (event) => this.handle(event),
      onStatus: (text, lost) => this.setConnection(text, lost),
      onOpen: () => { if (!this.root.dataset.wsOpenMs) this.root.dataset.wsOpenMs = Math.round(performance.now()); },
    });
  }

  connectParams() {
    const params = queryParams(this.board.query), state = this.state;
    params.set("after", state.lastSeq);
    this.held = Object.assign({}, this.curves.complete);
    params.set("have", Object.keys(this.held).join(","));
    if (state.selected.length) params.set("selected", state.selected.join(","));
    params.set("top", state.topN);
    return params;
  }

  // "live" only while something can still change: an ended search says so instead.
  setConnection(text, lost) {
    const conn = $("connection"), s = this.state.search;
    if (this.state.deleted) { text = "This search was deleted."; lost = true; }
    else if (!lost && s && SEARCH_ENDED.indexOf(s.state) >= 0) text = `This search has ${s.state === "finished" ? "finished" : "ended (" + s.state + ")"}: nothing more will change.`;
    conn.textContent = text;
    conn.classList.toggle("lost", Boolean(lost));
    conn.classList.toggle("live", !lost && text === "live");
    this.root.dataset.connection = lost ? "lost" : "live";
  }

  handle(event) {
    const root = this.root;
    if (!root.dataset.snapshotMs) root.dataset.snapshotMs = Math.round(performance.now());
    this.state.events += 1;
    if (event.type === "snapshot") this.applySnapshot(event);
    else if (event.type === "epoch") this.applyEpoch(event);
    else if (event.type === "candidate") this.applyCandidate(event.candidate, event.reset);
    else if (event.type === "search") this.applySearch(event.search);
    else if (event.type === "leaderboard") this.board.answer(event);
    else if (event.type === "pareto") this.applyFront(event.front);
    else if (event.type === "alpha") applyEdgeWeights(event.weights);
    this.schedule();
  }

  applySnapshot(s) {
    this.applySearch(s.search);
    s.candidates.forEach((c) => this.upsert(c));
    this.curves.snapshot(s, this.held || {});
    s.epochs.forEach((e) => { this.state.lastSeq = Math.max(this.state.lastSeq, e.seq); });
    this.state.lastSeq = Math.max(this.state.lastSeq, s.search.last_seq || 0);
    if (s.leaderboard) this.board.set(s.leaderboard);
    if (s.progress) this.progress.snapshot(s.progress);
    if (this.pareto.data) this.pareto.changed();
  }

  applyEpoch(e) {
    const state = this.state;
    if (e.seq <= state.lastSeq && this.curves.curves[e.candidate] && this.curves.curves[e.candidate][e.epoch]) return;
    state.lastSeq = Math.max(state.lastSeq, e.seq);
    let c = state.cands[e.candidate];
    if (!c) {
      c = state.cands[e.candidate] = { id: e.candidate, index: null, placeholder: true, state: "running", genotype: "",
        param_count: null, flops: null, latency_ms: null, epochs_done: 0, best_val_accuracy: null,
        final_val_accuracy: null, test_accuracy: null, has_checkpoint: false };
    }
    if (e.epoch >= (c.epochs_done || 0)) { c.epochs_done = e.epoch; c.final_val_accuracy = e.val_accuracy; }
    if (c.best_val_accuracy === null || c.best_val_accuracy === undefined || e.val_accuracy > c.best_val_accuracy) {
      c.best_val_accuracy = e.val_accuracy;
      this.curves.topDirty = true;
    }
    this.curves.epoch(e);
    this.board.changed(c.id);
  }

  applyCandidate(data, reset) {
    const collapse = $("darts-collapse");
    if (collapse && data.skip_collapse !== undefined) collapse.hidden = !data.skip_collapse;
    const prev = this.state.cands[data.id] ? Object.assign({}, this.state.cands[data.id]) : null;
    if (reset) this.curves.drop(data.id);
    const c = this.upsert(data);
    this.progress.candidate(c, prev);
    if (c.state === "finished" && !(prev && prev.state === "finished")) this.pareto.changed();
    if (c.has_checkpoint) $("best-download").hidden = false;
    if (this.curves.isDrawn(c.id)) this.curves.dirty = true;
    this.board.changed(c.id);
  }

  applySearch(s) {
    const was = this.state.search;
    this.state.search = s;
    if (was && SEARCH_ENDED.indexOf(s.state) >= 0 && SEARCH_ENDED.indexOf(was.state) < 0) this.board.changed(null, true);
    if (s.state === "deleted") {
      this.state.deleted = true;
      if (this.socket) this.socket.close();
    }
    this.progress.dirty = true;
    this.setConnection(this.state.deleted ? "" : "live", false);
  }

  applyFront(front) {
    const on = new Set(front);
    for (const c of Object.values(this.state.cands)) c.on_pareto_front = on.has(c.id);
    this.board.dirty = true;
    this.pareto.changed();
  }

  draw() {
    const state = this.state, root = this.root;
    state.draws += 1;
    this.progress.draw();
    this.curves.draw();
    this.board.draw();
    this.pareto.draw();
    if (state.lastSeq > state.drawnSeq) { state.drawnSeq = state.lastSeq; markDrawn(state.lastSeq); }
    Object.assign(root.dataset, { lastSeq: state.lastSeq, points: this.curves.points, draws: state.draws, events: state.events });
    if (!root.dataset.readyMs && this.board.ready) {
      root.dataset.readyMs = Math.round(performance.now());
      root.dataset.firstDrawMs = 0;
      // The scatter of a multi-objective search opens with the page, fetched once the page
      // is drawn so that it does not hold up the snapshot.
      if (this.pareto.open && !this.pareto.data && !this.pareto.loading) this.pareto.load();
    }
  }
}

// DARTS: the latest softmax weight of every op on every edge, as the job streams them.
function applyEdgeWeights(weights) {
  const body = document.querySelector("#darts-weights tbody");
  if (!body) return;
  body.innerHTML = Object.keys(weights).map((edge) => `<tr data-edge="${edge}"><th>${edge}</th>` +
    Object.keys(weights[edge]).map((op) => `<td data-op="${op}">${op} ${weights[edge][op].toFixed(3)}</td>`).join("") +
    "</tr>").join("");
}
