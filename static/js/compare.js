// Comparison page: best-so-far curves of several searches overlaid (against candidates
// ended and against time), and for one search each decision against accuracy (a box per
// choice, and parallel coordinates). The server sends bounded, aggregated data.
import { axes, colorFor, el, frame, scale } from "./lib/charts.js";
import { $, escapeHtml, readConfig } from "./lib/util.js";

function overlay(svg, curves, pick, xLabel) {
  const box = frame(svg, { L: 52, R: 14, T: 10, B: 34 });
  const ys = [], xs = [];
  curves.forEach((c) => c.points.forEach((p) => { ys.push(p[2]); xs.push(pick(p)); }));
  if (!ys.length) return;
  const lo = Math.min(...ys), hi = Math.max(...ys), pad = (hi - lo) * 0.08 || 0.02;
  const x = scale("linear", 0, Math.max(...xs, 1e-9), box.L, box.W - box.R);
  const y = scale("linear", Math.max(0, lo - pad), Math.min(1, hi + pad), box.H - box.B, box.T);
  axes(svg, x, y, box, { x: xLabel, y: "best val. accuracy" });
  curves.forEach((c, i) => {
    if (!c.points.length) return;
    const pts = [];
    c.points.forEach((p, k) => {
      if (k) pts.push(x(pick(p)) + "," + y(c.points[k - 1][2]));
      pts.push(x(pick(p)) + "," + y(p[2]));
    });
    const line = el("polyline", { points: pts.join(" "), stroke: colorFor(i), class: "best-curve", "data-search": c.id });
    line.appendChild(el("title", {}, `${c.name}: best ${c.points[c.points.length - 1][2].toFixed(4)}`));
    svg.appendChild(line);
  });
  svg.setAttribute("data-lines", curves.filter((c) => c.points.length).length);
}

function boxPlot(decision, lo, hi) {
  const figure = document.createElement("figure");
  figure.className = "decision-box";
  figure.dataset.decision = decision.name;
  figure.innerHTML = `<h3>${escapeHtml(decision.name)}</h3>`;
  const svg = el("svg", { role: "img", "aria-label": `accuracy per choice of ${decision.name}` });
  figure.appendChild(svg);
  requestAnimationFrame(() => {
    const box = frame(svg, { L: 44, R: 8, T: 8, B: 36 });
    const y = scale("linear", lo, hi, box.H - box.B, box.T);
    const n = decision.choices.length, band = (box.W - box.L - box.R) / Math.max(1, n);
    const x = (i) => box.L + band * (i + 0.5);
    x.ticks = () => []; x.format = String;
    axes(svg, x, y, box, {});
    decision.choices.forEach((c, i) => {
      const g = el("g", { class: "choice", "data-choice": c.value, "data-count": c.count });
      const cx = x(i), w = Math.min(36, band * 0.6);
      if (c.count) {
        g.appendChild(el("line", { x1: cx, x2: cx, y1: y(c.min), y2: y(c.max), class: "box-range" }));
        g.appendChild(el("rect", { x: cx - w / 2, width: w, y: y(c.q3), height: Math.max(1, y(c.q1) - y(c.q3)), class: "box-iqr" }));
        g.appendChild(el("line", { x1: cx - w / 2, x2: cx + w / 2, y1: y(c.median), y2: y(c.median), class: "box-median" }));
      }
      // A label fits its band (about 6.5 px a character); the title holds the whole value.
      const room = Math.max(3, Math.floor(band / 6.5));
      const name = c.value.length > room ? c.value.slice(0, room - 1) + "…" : c.value;
      g.appendChild(el("text", { x: cx, y: box.H - box.B + 13, "text-anchor": "middle", class: "tick" }, name));
      g.appendChild(el("text", { x: cx, y: box.H - box.B + 26, "text-anchor": "middle", class: "tick count" },
                       band < 44 ? String(c.count) : "n=" + c.count));
      g.appendChild(el("title", {}, c.count ? `${c.value}: ${c.count} candidates, median ${c.median.toFixed(4)}, ` +
        `middle half ${c.q1.toFixed(4)}–${c.q3.toFixed(4)}, range ${c.min.toFixed(4)}–${c.max.toFixed(4)}` : `${c.value}: no finished candidate`));
      svg.appendChild(g);
    });
  });
  return figure;
}

const SHADES = ["#d6dbe3", "#c3cfe4", "#aabde6", "#8fa9e6", "#7396e3", "#5a84de", "#4373d8", "#2f63cf", "#2458d6", "#153d9e"];

// One axis per decision (its choices spread along it) and one for accuracy; a line per
// candidate, coloured by accuracy. Lines of one shade share one path: a thousand lines
// are ten elements.
function parallel(svg, data) {
  const box = frame(svg, { L: 30, R: 60, T: 16, B: 28 });
  const axesCount = data.decisions.length + 1;
  if (!data.rows.length) return;
  const accs = data.rows.map((r) => r.accuracy);
  const lo = Math.min(...accs), hi = Math.max(...accs);
  const ax = (i) => box.L + (box.W - box.L - box.R) * i / Math.max(1, axesCount - 1);
  const ys = data.decisions.map((d) => (k) => box.T + (box.H - box.T - box.B) * (d.choices.length < 2 ? 0.5 : k / (d.choices.length - 1)));
  const yAcc = scale("linear", lo, hi === lo ? lo + 1e-6 : hi, box.H - box.B, box.T);
  const paths = SHADES.map(() => []);
  const most = Math.max(2, ...data.decisions.map((d) => d.choices.length));
  const spread = 0.5 * (box.H - box.T - box.B) / (most - 1);
  for (const r of data.rows) {
    const pts = [];
    // Each line crosses a choice's axis a little off its mark (the same offset on every
    // axis), so how many lines go through a choice shows as the width of the bundle.
    const jitter = (((r.id * 2654435761) >>> 0) / 4294967296 - 0.5) * spread;
    r.choices.forEach((k, i) => { if (k !== null) pts.push([ax(i), ys[i](k) + jitter]); });
    pts.push([ax(axesCount - 1), yAcc(r.accuracy)]);
    const shade = Math.min(SHADES.length - 1, Math.floor((r.accuracy - lo) / ((hi - lo) || 1) * SHADES.length));
    paths[shade].push("M" + pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join("L"));
  }
  paths.forEach((d, i) => { if (d.length) svg.appendChild(el("path", { d: d.join(""), stroke: SHADES[i], class: "pc-line", fill: "none", "data-lines": d.length })); });
  data.decisions.forEach((d, i) => {
    svg.appendChild(el("line", { x1: ax(i), x2: ax(i), y1: box.T, y2: box.H - box.B, class: "axis" }));
    svg.appendChild(el("text", { x: ax(i), y: box.H - 8, "text-anchor": "middle", class: "label axis-name" }, d.name));
    d.choices.forEach((c, k) => svg.appendChild(el("text", { x: ax(i) + 3, y: ys[i](k) - 3, class: "tick" }, c.length > 10 ? c.slice(0, 9) + "…" : c)));
  });
  const last = ax(axesCount - 1);
  svg.appendChild(el("line", { x1: last, x2: last, y1: box.T, y2: box.H - box.B, class: "axis" }));
  svg.appendChild(el("text", { x: last, y: box.H - 8, "text-anchor": "middle", class: "label axis-name" }, "val. accuracy"));
  for (const v of yAcc.ticks()) svg.appendChild(el("text", { x: last + 4, y: yAcc(v) + 4, class: "tick" }, yAcc.format(v)));
  svg.setAttribute("data-lines", data.rows.length);
}

function start(config) {
  const curves = config.curves;
  function drawCurves() {
    if (!curves.length || !$("best-vs-candidates")) return;
    overlay($("best-vs-candidates"), curves, (p) => p[0], "candidates ended");
    const longest = Math.max(...curves.flatMap((c) => c.points.map((p) => p[1])), 0);
    const [unit, seconds] = longest > 3 * 86400 ? ["days", 86400] : longest > 3 * 3600 ? ["hours", 3600] : ["minutes", 60];
    overlay($("best-vs-time"), curves, (p) => p[1] / seconds, unit + " since the search started");
  }
  if ($("compare-legend")) {
    $("compare-legend").innerHTML = curves.map((c, i) => `<li data-search="${c.id}"><span class="swatch" style="background:${colorFor(i)}"></span>` +
      `${escapeHtml(c.name)} <span class="hint">${c.points.length ? "best " + c.points[c.points.length - 1][2].toFixed(4) + " after " + c.ended + " candidates" : "no finished candidate yet"}</span></li>`).join("");
  }
  const focus = config.focus;
  function drawParallel() { if (focus) parallel($("parallel"), focus.parallel); }
  if (focus) {
    const all = focus.decisions.flatMap((d) => d.choices.filter((c) => c.count).flatMap((c) => [c.min, c.max]));
    const lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
    const pad = (hi - lo) * 0.05 || 0.02;
    const holder = $("decision-boxes");
    focus.decisions.forEach((d) => holder.appendChild(boxPlot(d, Math.max(0, lo - pad), Math.min(1, hi + pad))));
    const p = focus.parallel;
    $("parallel-note").textContent = p.sampled
      ? `${p.rows.length.toLocaleString()} of ${p.total.toLocaleString()} finished candidates drawn: the most accurate and an even sample of the rest.`
      : `${p.rows.length.toLocaleString()} finished candidates.`;
  }
  const redraw = () => { drawCurves(); drawParallel(); document.getElementById("compare").dataset.drawn = "1"; };
  let frameId = 0;
  new ResizeObserver(() => { if (!frameId) frameId = requestAnimationFrame(() => { frameId = 0; redraw(); }); })
    .observe(document.getElementById("compare"));
  redraw();
}

start(readConfig("compare-config"));
