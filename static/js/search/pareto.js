// Accuracy against a cost (parameters, FLOPs or latency) with the Pareto front. Points and
// front come from the server (searches/selectors, one front implementation): every finished
// candidate up to the server's cap, with the whole front kept and a note when capped. A new
// cost, or a candidate that finishes, asks the server again (at most every RELOAD_MS).
import { scatter } from "../lib/charts.js";
import { $, getJson } from "../lib/util.js";

const RELOAD_MS = 2000;
const FIELDS = { params: "param_count", flops: "flops", latency: "latency_ms" };

export class Pareto {
  constructor(page) {
    this.page = page;
    this.data = null; this.loading = false; this.again = false; this.timer = null; this.loaded = 0;
    this.dirty = false;
  }

  get open() { return $("pareto-card").open; }

  async load() {
    if (this.loading) { this.again = true; return; }
    this.loading = true; this.loaded = Date.now();
    const x = $("pareto-x").value;
    try {
      const data = await getJson(this.page.config.urls.scatter + "?x=" + encodeURIComponent(x));
      if (data.x === $("pareto-x").value) { this.data = data; this.dirty = true; }
      else this.again = true;
    } catch (e) { /* the card keeps what it drew; the next change asks again */ }
    this.loading = false;
    if (this.again) { this.again = false; this.load(); }
    this.page.schedule();
  }

  // A candidate finished (or the search's front moved): the server's points changed.
  changed() {
    if (!this.open || !this.data || this.timer) return;
    const wait = Math.max(0, this.loaded + RELOAD_MS - Date.now());
    this.timer = setTimeout(() => { this.timer = null; this.load(); }, wait);
  }

  draw() {
    if (!this.dirty || !this.data) return;
    this.dirty = false;
    const data = this.data, field = FIELDS[data.x];
    const points = data.points.map((p) => ({ id: p.id, x: p[field], y: p.best_val_accuracy, label: "#" + p.index }));
    const costLabel = $("pareto-x").querySelector(`option[value="${data.x}"]`).textContent;
    const onFront = scatter($("pareto"), points, data.front, {
      xLabel: costLabel, yLabel: "best val. accuracy",
      onClick: (p) => { location.href = this.page.urls.candidate(p.id); },
    });
    $("pareto").dataset.cost = data.x;
    const drawn = Number($("pareto").getAttribute("data-points"));
    $("pareto-empty").hidden = drawn > 0;
    $("pareto-note").textContent = drawn ? `${onFront} on the front of ${drawn.toLocaleString()} drawn` : "";
    const capped = $("pareto-capped");
    capped.hidden = !data.sampled;
    capped.textContent = data.sampled ? `Capped: ${drawn.toLocaleString()} of ${data.total.toLocaleString()} finished ` +
      `candidates drawn (every point on the front, the most accurate and an even sample of the rest).` : "";
  }

  wire() {
    // Reopened: candidates may have finished while it was closed (nothing was asked then).
    $("pareto-card").addEventListener("toggle", (e) => { if (e.target.open && this.page.board.ready && !this.loading) this.load(); });
    $("pareto-x").addEventListener("change", () => this.load());
  }
}
