// The curves chart: the best N candidates, the ones the user ticked and (held, not drawn)
// the running ones. Curves of drawn candidates whose start the page never saw are fetched.
import { lineChart, colorFor } from "../lib/charts.js";
import { $, escapeHtml, getJson } from "../lib/util.js";
import { isEnded, label } from "./state.js";

const MAX_HELD_CURVES = 300;
const METRIC_LABELS = { val_accuracy: "validation accuracy", train_accuracy: "training accuracy",
                        val_loss: "validation loss", train_loss: "training loss" };

export class Curves {
  constructor(page) {
    this.page = page;
    this.curves = {};     // id -> {epoch: point}
    this.complete = {};   // ids whose curve the page holds from its first epoch on
    this.pending = {};    // id -> epochs that arrived while its curve was being fetched
    this.points = 0; this.top = []; this.topDirty = true; this.dirty = true;
    this.metric = "val_accuracy"; this.yScale = "linear";
    this.storageKey = "nasweb-selected-" + page.config.search_id;
    try { page.state.selected = JSON.parse(sessionStorage.getItem(this.storageKey) || "[]").map(Number).filter(Boolean); }
    catch (e) { page.state.selected = []; }
  }

  saveSelected() {
    try { sessionStorage.setItem(this.storageKey, JSON.stringify(this.page.state.selected)); } catch (e) { /* private mode */ }
  }

  drawnIds() {
    const ids = this.top.slice();
    this.page.state.selected.forEach((id) => { if (ids.indexOf(id) < 0) ids.push(id); });
    return ids;
  }
  isDrawn(id) { return this.top.indexOf(id) >= 0 || this.page.state.selected.indexOf(id) >= 0; }

  drop(id) {
    const curve = this.curves[id];
    if (curve) this.points -= Object.keys(curve).length;
    delete this.curves[id];
    delete this.complete[id];
  }

  add(e) {
    if (this.pending[e.candidate]) { this.pending[e.candidate].push(e); return; }
    const curve = this.curves[e.candidate] || (this.curves[e.candidate] = {});
    const old = curve[e.epoch];
    if (old && old.seq === e.seq) return;  // seen before a reconnect
    if (!old) this.points += 1;
    curve[e.epoch] = { epoch: e.epoch, seq: e.seq, val_accuracy: e.val_accuracy, train_accuracy: e.train_accuracy,
                       val_loss: e.val_loss, train_loss: e.train_loss };
    if (this.isDrawn(e.candidate)) this.dirty = true;
  }

  // An epoch event: a curve seen from its first epoch is whole; others are fetched if drawn.
  epoch(e) {
    if (!this.complete[e.candidate] && e.epoch === 1 && !this.pending[e.candidate]) {
      this.drop(e.candidate);
      this.complete[e.candidate] = true;
    }
    if (this.complete[e.candidate] || this.pending[e.candidate]) this.add(e);
  }

  snapshot(s, held) {
    s.drawn.forEach((id) => { if (!held[id]) this.drop(id); this.complete[id] = true; });
    Object.keys(this.complete).map(Number).forEach((id) => { if (s.drawn.indexOf(id) < 0) this.drop(id); });
    s.epochs.forEach((e) => this.add(e));
    this.top = s.top.slice(0, this.page.state.topN);
    this.dirty = true;
    this.ensure();
  }

  async ensure() {
    const missing = this.drawnIds().filter((id) => !this.complete[id] && !this.pending[id]);
    if (!missing.length) return;
    missing.forEach((id) => { this.pending[id] = []; });
    try {
      const data = await getJson(this.page.config.urls.curves + "?ids=" + missing.join(","));
      data.candidates.forEach((c) => this.page.upsert(c));
      for (const id of missing) {
        const buffered = this.pending[id] || [];
        delete this.pending[id];
        this.drop(id);
        this.complete[id] = true;
        data.epochs.filter((e) => e.candidate === id).forEach((e) => this.add(e));
        buffered.forEach((e) => this.add(e));
      }
    } catch (e) { missing.forEach((id) => { delete this.pending[id]; }); }
    this.dirty = true;
    this.page.schedule();
  }

  // Curves of ended candidates that are not drawn are forgotten once the page holds many.
  prune() {
    const held = Object.keys(this.complete);
    if (held.length <= MAX_HELD_CURVES) return;
    held.map(Number).forEach((id) => { if (isEnded(this.page.state.cands[id]) && !this.isDrawn(id)) this.drop(id); });
  }

  // The best N the page knows of, for the chart (the leaderboard's order is the server's).
  computeTop() {
    if (!this.topDirty) return;
    this.topDirty = false;
    const cands = this.page.state.cands;
    const known = Object.values(cands).filter((c) => c.best_val_accuracy !== null && c.best_val_accuracy !== undefined);
    known.sort((a, b) => b.best_val_accuracy - a.best_val_accuracy || (a.index ?? Infinity) - (b.index ?? Infinity));
    const top = known.slice(0, this.page.state.topN).map((c) => c.id);
    if (top.join(",") !== this.top.join(",")) { this.top = top; this.dirty = true; }
    this.ensure();
    this.prune();
  }

  draw() {
    this.computeTop();
    if (!this.dirty) return;
    this.dirty = false;
    const cands = this.page.state.cands, selected = this.page.state.selected;
    const series = this.drawnIds().map((id) => {
      const c = cands[id], curve = this.curves[id] || {};
      const pts = Object.values(curve).sort((a, b) => a.epoch - b.epoch)
        .map((p) => ({ x: p.epoch, y: p[this.metric], seq: p.seq }));
      return { id, label: label(c), color: colorFor(c && c.index !== null ? c.index : id),
               selected: selected.indexOf(id) >= 0, points: pts };
    }).filter((s) => s.points.length);
    const maxEpoch = (this.page.state.search && this.page.state.search.epochs) || 1;
    lineChart($("chart"), series, { metric: this.metric, yLabel: METRIC_LABELS[this.metric], yScale: this.yScale, xMax: maxEpoch });
    $("chart-empty").hidden = series.length > 0;
    $("chart-legend").innerHTML = series.map((s) =>
      `<li data-candidate="${s.id}"${s.selected ? ' class="selected"' : ""}><span class="swatch" style="background:${s.color}"></span>` +
      `<a href="${this.page.urls.candidate(s.id)}">${escapeHtml(s.label)}</a></li>`).join("");
  }

  wire() {
    const page = this.page, state = page.state;
    $("leaderboard").addEventListener("change", (event) => {
      if (!event.target.classList.contains("pick")) return;
      const id = Number(event.target.dataset.candidate);
      if (event.target.checked && state.selected.indexOf(id) < 0) {
        if (state.selected.length >= page.config.max_selected) state.selected.shift();
        state.selected.push(id);
      } else if (!event.target.checked) {
        state.selected = state.selected.filter((s) => s !== id);
      }
      this.saveSelected();
      this.dirty = page.board.dirty = true;
      this.ensure();
      page.schedule();
    });
    $("clear-selection").addEventListener("click", () => {
      state.selected = []; this.saveSelected();
      this.dirty = page.board.dirty = true; page.schedule();
    });
    $("curve-metric").addEventListener("change", (e) => { this.metric = e.target.value; this.dirty = true; page.schedule(); });
    $("curve-scale").addEventListener("change", (e) => { this.yScale = e.target.value; this.dirty = true; page.schedule(); });
    $("curve-top").addEventListener("change", async (e) => {
      state.topN = Number(e.target.value);
      // The best N may include candidates the page never heard of: ask for them once.
      try {
        const board = await getJson(page.config.urls.leaderboard + "?sort=-best&page_size=" + state.topN);
        board.rows.forEach((c) => page.upsert(c));
      } catch (err) { /* drawn from what the page knows */ }
      this.topDirty = this.dirty = true; page.schedule();
    });
  }
}
