// New-search form: presets fill in the budget; the space's size and an estimate of the run's
// time follow every change (budget, epochs, data set, proxy fraction, at once, live workers).
import { setAsked } from "./workercount.js";

const presets = JSON.parse(document.getElementById("presets").textContent);
const info = JSON.parse(document.getElementById("form-info").textContent);
const field = (name) => document.getElementById("id_" + name);
let workers = info.workers_online;

function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function number(name, fallback) {
  const v = Number(field(name)?.value);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function update() {
  const space = field("space")?.value;
  const size = info.space_sizes[space];
  const candidates = number("max_candidates", 1);
  document.getElementById("space-size").textContent = size
    ? `The ${space} space holds ${size.toLocaleString("en")} architectures; this search trains ${Math.min(candidates, size).toLocaleString("en")} of them (${(100 * Math.min(candidates, size) / size).toPrecision(2)}%).`
    : "";
  const dataset = field("dataset")?.value;
  const perEpoch = info.epoch_seconds[dataset];
  const epochs = number("epochs", 1), parallel = number("parallel", 1);
  const fraction = Math.min(1, number("train_fraction", 1));
  const slots = Math.max(1, Math.min(parallel, workers));
  const out = document.getElementById("run-estimate");
  if (perEpoch === undefined) {
    out.textContent = `Run time: no earlier epoch on ${dataset} to estimate from; it is ${candidates} × ${epochs} epochs over ${slots} worker${slots === 1 ? "" : "s"}.`;
  } else {
    const total = Math.ceil(candidates / slots) * epochs * perEpoch * fraction;
    out.textContent = `Run time: about ${duration(total)} (${candidates} candidates × ${epochs} epochs, ` +
      `${perEpoch.toFixed(1)} s per epoch on ${dataset} so far, ${slots} at once with ${workers} worker${workers === 1 ? "" : "s"} online).`;
  }
  const box = document.querySelector("[data-worker-count]");
  if (box && box.dataset.asked !== String(parallel)) setAsked(parallel);
}

for (const button of document.querySelectorAll("button.preset")) {
  button.addEventListener("click", () => {
    for (const [key, value] of Object.entries(presets[button.dataset.preset])) {
      const input = field(key);
      if (input) input.value = value;
    }
    update();
  });
}
document.getElementById("search-form").addEventListener("input", update);
document.getElementById("search-form").addEventListener("change", update);
document.addEventListener("nasweb:workers", (e) => { workers = e.detail.online; update(); });
update();
