// SVG charts drawn by hand: curves per epoch (linear or log axis), accuracy against a cost
// with the Pareto front the server computed, a step line over time. Every mark is an
// element a test can find (circle.point, polyline[data-candidate], circle.scatter-point.front).
//
// Each chart is drawn in the pixels it has: the viewBox is set to the element's size at
// every redraw, so text never stretches and dots stay round whatever the box's shape.
import { formatNumber } from "./util.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2458d6", "#d6462f", "#1e7d32", "#8e44ad", "#e67e22", "#16a085", "#c0392b",
                "#2c3e50", "#7f8c8d", "#b7950b"];

export { formatNumber };

export function el(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function colorFor(n) { return COLORS[((n % COLORS.length) + COLORS.length) % COLORS.length]; }

// Clear the chart and size its drawing to the element: {W, H, L, R, T, B} in pixels.
export function frame(svg, margins) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const rect = svg.getBoundingClientRect();
  const W = Math.max(200, Math.round(rect.width) || 640), H = Math.max(80, Math.round(rect.height) || 300);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  return Object.assign({ W, H }, margins);
}

// Decimals that tell every tick of this step apart (0.025 -> 3, 0.05 -> 2, 5 -> 0).
function decimalsOf(step) {
  const text = (+step.toPrecision(12)).toString();
  if (/e-/.test(text)) return Math.min(12, Number(text.split("e-")[1]) + 1);
  return text.indexOf(".") < 0 ? 0 : text.length - text.indexOf(".") - 1;
}

// A scale maps a domain onto a pixel range; "log" uses log10 and needs positive values.
export function scale(kind, lo, hi, p0, p1) {
  if (kind === "log") {
    lo = Math.max(lo, 1e-12); hi = Math.max(hi, lo * 1.0001);
    const a = Math.log10(lo), b = Math.log10(hi);
    const f = (v) => p0 + (p1 - p0) * (Math.log10(Math.max(v, lo)) - a) / (b - a);
    f.ticks = () => {
      let ticks = [];
      for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
        for (const m of [1, 2, 5]) { const t = m * Math.pow(10, e); if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(t); }
      }
      if (ticks.length > 8) ticks = ticks.filter((t) => Math.abs(Math.log10(t) % 1) < 1e-9);
      if (ticks.length < 2) ticks = [lo, hi];
      return ticks;
    };
    f.format = formatNumber;
    return f;
  }
  if (hi === lo) hi = lo + 1;
  const g = (v) => p0 + (p1 - p0) * (v - lo) / (hi - lo);
  const span = hi - lo;
  let step = Math.pow(10, Math.floor(Math.log10(span / 4)));
  if (span / step > 10) step *= 2;
  if (span / step > 10) step *= 2.5;
  g.step = step;
  g.ticks = () => {
    const ticks = [];
    for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-6; i++) ticks.push(+(i * step).toPrecision(12));
    return ticks;
  };
  const digits = decimalsOf(step);
  g.format = (v) => (Math.abs(v) >= 1000 && step >= 1 ? formatNumber(v) : v.toFixed(digits));
  return g;
}

// Tick labels never repeat: a label equal to the one before it is left out.
function tickLabels(axis) {
  let previous = null;
  return axis.ticks().map((v) => {
    const text = axis.format(v);
    const keep = text !== previous;
    previous = text;
    return keep ? [v, text] : null;
  }).filter(Boolean);
}

export function axes(svg, x, y, box, labels) {
  for (const [v, text] of tickLabels(y)) {
    svg.appendChild(el("line", { x1: box.L, x2: box.W - box.R, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(el("text", { x: box.L - 4, y: y(v) + 4, "text-anchor": "end", class: "tick y-tick" }, text));
  }
  for (const [v, text] of tickLabels(x)) {
    svg.appendChild(el("text", { x: x(v), y: box.H - box.B + 14, "text-anchor": "middle", class: "tick x-tick" }, text));
  }
  svg.appendChild(el("line", { x1: box.L, x2: box.L, y1: box.T, y2: box.H - box.B, class: "axis" }));
  svg.appendChild(el("line", { x1: box.L, x2: box.W - box.R, y1: box.H - box.B, y2: box.H - box.B, class: "axis" }));
  if (labels.x) svg.appendChild(el("text", { x: (box.L + box.W - box.R) / 2, y: box.H - 3, "text-anchor": "middle", class: "label" }, labels.x));
  if (labels.y) {
    const mid = box.T + (box.H - box.T - box.B) / 2;
    svg.appendChild(el("text", { x: 12, y: mid, class: "label", transform: `rotate(-90 12 ${mid})`, "text-anchor": "middle" }, labels.y));
  }
}

function extent(values, fallback) {
  if (!values.length) return fallback;
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

// series: [{id, label, color, selected, points: [{x, y, seq}]}]; opts: {metric, yScale, xMax, yLabel, maxMarks}
export function lineChart(svg, series, opts) {
  const box = frame(svg, { L: 52, R: 12, T: 10, B: 34 });
  const ys = [];
  series.forEach((s) => s.points.forEach((p) => { if (p.y !== null && !isNaN(p.y)) ys.push(p.y); }));
  const isAcc = /accuracy/.test(opts.metric || "");
  const kind = opts.yScale === "log" ? "log" : "linear";
  let lo, hi;
  if (kind === "log") {
    [lo, hi] = extent(ys.filter((v) => v > 0), [0.01, 1]);
    if (isAcc) hi = Math.max(hi, 1);
  } else if (isAcc) { lo = 0; hi = 1; } else {
    lo = 0; hi = extent(ys, [0, 1])[1];
    hi = hi > 0 ? hi * 1.05 : 1;
  }
  const xMax = Math.max(opts.xMax || 1, 2);
  const x = scale("linear", 1, xMax, box.L, box.W - box.R);
  const xStep = Math.max(1, Math.ceil((xMax - 1) / 10));
  x.ticks = () => { const t = []; for (let v = 1; v <= xMax; v += xStep) t.push(v); return t; };
  x.format = (v) => String(v);  // epochs are whole numbers
  const y = scale(kind, lo, hi, box.H - box.B, box.T);
  svg.setAttribute("data-scale", kind);
  svg.setAttribute("data-metric", opts.metric || "");
  axes(svg, x, y, box, { x: "epoch", y: (opts.yLabel || opts.metric || "") + (kind === "log" ? " (log)" : "") });
  const total = series.reduce((n, s) => n + s.points.length, 0);
  const maxMarks = opts.maxMarks || 3000;
  const marks = document.createDocumentFragment();
  for (const s of series) {
    const pts = s.points.filter((p) => p.y !== null && !isNaN(p.y) && (kind !== "log" || p.y > 0));
    if (!pts.length) continue;
    const line = el("polyline", { points: pts.map((p) => x(p.x) + "," + y(p.y)).join(" "),
      stroke: s.color, "data-candidate": s.id, class: s.selected ? "selected" : null });
    line.appendChild(el("title", {}, s.label));
    marks.appendChild(line);
    for (const p of total <= maxMarks ? pts : pts.slice(-1)) {
      const dot = el("circle", { cx: x(p.x), cy: y(p.y), r: 2.5, fill: s.color, class: "point",
                                 "data-seq": p.seq, "data-candidate": s.id });
      dot.appendChild(el("title", {}, s.label + ", epoch " + p.x + ": " + formatNumber(p.y)));
      marks.appendChild(dot);
    }
  }
  svg.appendChild(marks);
}

// points: [{id, x, y, label}]; front: the ids the server put on the front of (max y, min x).
// The front is drawn as a step line and its points get the class "front".
export function scatter(svg, points, front, opts) {
  const box = frame(svg, { L: 52, R: 12, T: 10, B: 34 });
  const usable = points.filter((p) => p.x !== null && p.x !== undefined && p.y !== null && p.y !== undefined && p.x > 0);
  svg.setAttribute("data-points", usable.length);
  if (!usable.length) return 0;
  const [xLo, xHi] = extent(usable.map((p) => p.x));
  const [yLo, yHi] = extent(usable.map((p) => p.y));
  const x = scale("log", xLo / 1.2, xHi * 1.2, box.L, box.W - box.R);
  const pad = (yHi - yLo) * 0.05 || 0.05;
  const y = scale("linear", Math.max(0, yLo - pad), Math.min(1, yHi + pad), box.H - box.B, box.T);
  axes(svg, x, y, box, { x: opts.xLabel + " (log)", y: opts.yLabel });
  const onFront = new Set(front);
  const frontPoints = usable.filter((p) => onFront.has(p.id)).sort((a, b) => a.x - b.x || b.y - a.y);
  if (frontPoints.length > 1) {
    const steps = [];
    frontPoints.forEach((p, i) => {
      if (i) steps.push(x(p.x) + "," + y(frontPoints[i - 1].y));
      steps.push(x(p.x) + "," + y(p.y));
    });
    svg.appendChild(el("polyline", { points: steps.join(" "), class: "front-line" }));
  }
  const byId = new Map();
  const marks = document.createDocumentFragment();
  // Front points last, so they sit on top of the crowd.
  for (const p of usable.filter((q) => !onFront.has(q.id)).concat(frontPoints)) {
    byId.set(String(p.id), p);
    const isFront = onFront.has(p.id);
    const dot = el("circle", { cx: x(p.x), cy: y(p.y), r: isFront ? 4 : 2.5,
      class: "scatter-point" + (isFront ? " front" : ""), "data-candidate": p.id });
    dot.appendChild(el("title", {}, `${p.label} — ${opts.xLabel} ${formatNumber(p.x)}, ${opts.yLabel} ${p.y.toFixed(4)}`));
    marks.appendChild(dot);
  }
  svg.appendChild(marks);
  // One listener for every point (thousands of them), replaced at each redraw.
  svg.onclick = opts.onClick ? (event) => {
    const id = event.target.getAttribute && event.target.getAttribute("data-candidate");
    if (id && byId.has(id)) opts.onClick(byId.get(id));
  } : null;
  return frontPoints.length;
}

// A step line of [{t (ms), y}] over wall-clock time, from the first point to `end` (ms):
// the search's end when it has ended, now while it runs.
export function stepChart(svg, points, opts) {
  const box = frame(svg, { L: 52, R: 12, T: 8, B: 30 });
  if (!points.length) return;
  const t0 = points[0].t, t1 = Math.max(opts.end || Date.now(), points[points.length - 1].t, t0 + 1000);
  const [lo, hi] = extent(points.map((p) => p.y));
  const pad = (hi - lo) * 0.1 || 0.02;
  const minutes = (t) => (t - t0) / 60000;
  const x = scale("linear", 0, minutes(t1), box.L, box.W - box.R);
  const y = scale("linear", Math.max(0, lo - pad), Math.min(1, hi + pad), box.H - box.B, box.T);
  svg.setAttribute("data-end", new Date(t1).toISOString());
  axes(svg, x, y, box, { x: "minutes since the first result", y: opts.yLabel });
  const pts = [];
  points.forEach((p, i) => {
    const px = x(minutes(p.t));
    if (i) pts.push(px + "," + y(points[i - 1].y));
    pts.push(px + "," + y(p.y));
  });
  pts.push(x(minutes(t1)) + "," + y(points[points.length - 1].y));
  svg.appendChild(el("polyline", { points: pts.join(" "), class: "best-line" }));
  for (const p of points) {
    const dot = el("circle", { cx: x(minutes(p.t)), cy: y(p.y), r: 2.5, class: "best-point" });
    dot.appendChild(el("title", {}, formatNumber(p.y) + (p.label ? " — " + p.label : "")));
    svg.appendChild(dot);
  }
}
