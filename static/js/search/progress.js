// The progress card: counts, time left, device time, the best value so far over time.
import { stepChart } from "../lib/charts.js";
import { $, formatDuration } from "../lib/util.js";
import { ACTIVE, ENDED, SEARCH_ENDED, isEnded, label } from "./state.js";

export class Progress {
  constructor(page) {
    this.page = page;
    this.endedSeconds = 0; this.finishedSeconds = 0; this.finishedCount = 0; this.best = []; this.counted = {};
    this.dirty = true;
  }

  snapshot(p) {
    this.endedSeconds = p.ended_seconds; this.finishedSeconds = p.finished_seconds;
    this.finishedCount = p.finished_count; this.counted = {};
    this.best = p.best_so_far.map((b) => ({ t: Date.parse(b[0]), y: b[1], label: "candidate " + b[2] }));
    this.dirty = true;
  }

  // A candidate changed; prev is what the page knew of it before.
  candidate(c, prev) {
    this.dirty = true;
    if (!isEnded(c) || (prev && isEnded(prev)) || this.counted[c.id]) return;
    this.counted[c.id] = true;
    if (c.started_at && c.finished_at) {
      const seconds = (Date.parse(c.finished_at) - Date.parse(c.started_at)) / 1000;
      this.endedSeconds += seconds;
      if (c.state === "finished") { this.finishedSeconds += seconds; this.finishedCount += 1; }
    }
    const best = this.best.length ? this.best[this.best.length - 1].y : null;
    if (c.finished_at && c.best_val_accuracy !== null && (best === null || c.best_val_accuracy > best)) {
      this.best.push({ t: Date.parse(c.finished_at), y: c.best_val_accuracy, label: label(c) });
    }
  }

  deviceSeconds() {
    let total = this.endedSeconds;
    const now = Date.now();
    for (const c of Object.values(this.page.state.cands)) {
      if (c.state === "running" && c.started_at) total += Math.max(0, (now - Date.parse(c.started_at)) / 1000);
    }
    return total;
  }

  secondsLeft(s, ended) {
    if (!this.finishedCount) return null;
    const mean = this.finishedSeconds / this.finishedCount;
    return Math.max(0, mean * (s.max_candidates - ended) / Math.max(1, s.parallel));
  }

  draw() {
    const s = this.page.state.search;
    if (!this.dirty || !s) return;
    this.dirty = false;
    const stateEl = $("search-state");
    stateEl.textContent = s.state;
    stateEl.className = "state state-" + s.state;
    const counts = s.counts || {};
    const ended = ENDED.reduce((n, k) => n + (counts[k] || 0), 0);
    const pct = s.max_candidates ? Math.min(100, Math.round(100 * ended / s.max_candidates)) : 0;
    $("progress-bar").style.width = pct + "%";
    const eta = ACTIVE.indexOf(s.state) >= 0 ? this.secondsLeft(s, ended) : null;
    let text = `${ended} / ${s.max_candidates} candidates done · ${counts.running || 0} running · ` +
      `${counts.queued || 0} queued · ${counts.failed || 0} failed`;
    if (eta !== null) text += " · about " + formatDuration(eta) + " left";
    $("progress-text").textContent = text;
    document.querySelectorAll("#counts [data-state]").forEach((chip) => {
      chip.querySelector("b").textContent = (counts[chip.dataset.state] || 0).toLocaleString();
    });
    $("eta").textContent = eta === null ? "—" : formatDuration(eta);
    $("gpu-hours").textContent = (this.deviceSeconds() / 3600).toFixed(2);
    const best = this.best;
    $("best-value").textContent = best.length ? best[best.length - 1].y.toFixed(4) : "—";
    $("best-chart-empty").hidden = best.length > 0;
    $("best-chart").style.display = best.length ? "" : "none";
    // A search that ended is drawn to its end, not to now.
    const end = SEARCH_ENDED.indexOf(s.state) >= 0 && s.finished_at ? Date.parse(s.finished_at) : Date.now();
    if (best.length) stepChart($("best-chart"), best, { yLabel: "best val. acc.", end });
    const error = $("search-error");
    error.hidden = !s.error;
    error.textContent = s.error || "";
    const deleted = this.page.state.deleted;
    const show = { "pause-form": ACTIVE.indexOf(s.state) >= 0, "resume-form": s.state === "paused",
                   "cancel-form": ACTIVE.indexOf(s.state) >= 0 || s.state === "paused" };
    for (const [id, on] of Object.entries(show)) { const f = $(id); if (f) f.hidden = !on || deleted; }
    if (deleted) {
      $("search-deleted").hidden = false;
      document.querySelectorAll(".controls a, #best-download").forEach((a) => { a.hidden = true; });
    }
  }
}
