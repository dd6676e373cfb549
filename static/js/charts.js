// Small SVG charts drawn by hand: curves per epoch (linear or log axis), a scatter with
// its Pareto front, a step line over time. No library: every mark is an element a test
// can find (circle.point, polyline[data-candidate], circle.scatter-point.front ...).
(function (global) {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2458d6", "#d6462f", "#1e7d32", "#8e44ad", "#e67e22", "#16a085", "#c0392b",
                "#2c3e50", "#7f8c8d", "#b7950b"];

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }

  function colorFor(n) { return COLORS[((n % COLORS.length) + COLORS.length) % COLORS.length]; }

  function formatNumber(v) {
    if (v === null || v === undefined || isNaN(v)) return "—";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
    if (a === 0) return "0";
    return v.toPrecision(2);
  }

  // A scale maps a domain onto a pixel range; "log" uses log10 and needs positive values.
  function scale(kind, lo, hi, p0, p1) {
    if (kind === "log") {
      lo = Math.max(lo, 1e-12); hi = Math.max(hi, lo * 1.0001);
      var a = Math.log10(lo), b = Math.log10(hi);
      var f = function (v) { return p0 + (p1 - p0) * (Math.log10(Math.max(v, lo)) - a) / (b - a); };
      f.ticks = function () {
        var ticks = [];
        for (var e = Math.floor(a); e <= Math.ceil(b); e++) {
          [1, 2, 5].forEach(function (m) { var t = m * Math.pow(10, e); if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(t); });
        }
        if (ticks.length > 8) ticks = ticks.filter(function (t) { return Math.abs(Math.log10(t) % 1) < 1e-9; });
        if (ticks.length < 2) ticks = [lo, hi];
        return ticks;
      };
      return f;
    }
    if (hi === lo) { hi = lo + 1; }
    var g = function (v) { return p0 + (p1 - p0) * (v - lo) / (hi - lo); };
    g.ticks = function () {
      var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / 4)));
      if (span / step > 10) step *= 2.5;
      if (span / step > 10) step *= 2;
      var ticks = [];
      for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-6; t += step) ticks.push(+t.toPrecision(12));
      return ticks;
    };
    return g;
  }

  function axes(svg, x, y, box, labels) {
    y.ticks().forEach(function (v) {
      svg.appendChild(el("line", { x1: box.L, x2: box.W - box.R, y1: y(v), y2: y(v), "class": "grid" }));
      svg.appendChild(el("text", { x: box.L - 4, y: y(v) + 4, "text-anchor": "end", "class": "tick" }, formatNumber(v)));
    });
    x.ticks().forEach(function (v) {
      svg.appendChild(el("text", { x: x(v), y: box.H - box.B + 14, "text-anchor": "middle", "class": "tick" }, formatNumber(v)));
    });
    svg.appendChild(el("line", { x1: box.L, x2: box.L, y1: box.T, y2: box.H - box.B, "class": "axis" }));
    svg.appendChild(el("line", { x1: box.L, x2: box.W - box.R, y1: box.H - box.B, y2: box.H - box.B, "class": "axis" }));
    if (labels.x) svg.appendChild(el("text", { x: (box.L + box.W - box.R) / 2, y: box.H - 3, "text-anchor": "middle", "class": "label" }, labels.x));
    if (labels.y) svg.appendChild(el("text", { x: 12, y: box.T + (box.H - box.T - box.B) / 2, "class": "label",
      transform: "rotate(-90 12 " + (box.T + (box.H - box.T - box.B) / 2) + ")", "text-anchor": "middle" }, labels.y));
  }

  // series: [{id, label, color, points: [{x, y, seq}]}]; opts: {metric, yScale, xMax, yLabel, maxMarks}
  function lineChart(svg, series, opts) {
    clear(svg);
    var box = { W: 640, H: 300, L: 52, R: 12, T: 10, B: 34 };
    var ys = [];
    series.forEach(function (s) { s.points.forEach(function (p) { if (p.y !== null && !isNaN(p.y)) ys.push(p.y); }); });
    var isAcc = /accuracy/.test(opts.metric || "");
    var kind = opts.yScale === "log" ? "log" : "linear";
    var lo, hi;
    if (kind === "log") {
      var pos = ys.filter(function (v) { return v > 0; });
      lo = pos.length ? Math.min.apply(null, pos) : 0.01;
      hi = pos.length ? Math.max.apply(null, pos) : 1;
      if (isAcc) hi = Math.max(hi, 1);
    } else if (isAcc) { lo = 0; hi = 1; } else {
      lo = 0; hi = ys.length ? Math.max.apply(null, ys) : 1;
      hi = hi > 0 ? hi * 1.05 : 1;
    }
    var xMax = Math.max(opts.xMax || 1, 2);
    var x = scale("linear", 1, xMax, box.L, box.W - box.R);
    x.ticks = function () {  // epochs are whole numbers
      var step = Math.max(1, Math.ceil((xMax - 1) / 10)), ticks = [];
      for (var t = 1; t <= xMax; t += step) ticks.push(t);
      return ticks;
    };
    var y = scale(kind, lo, hi, box.H - box.B, box.T);
    svg.setAttribute("data-scale", kind);
    svg.setAttribute("data-metric", opts.metric || "");
    axes(svg, x, y, box, { x: "epoch", y: (opts.yLabel || opts.metric || "") + (kind === "log" ? " (log)" : "") });
    var total = series.reduce(function (n, s) { return n + s.points.length; }, 0);
    var maxMarks = opts.maxMarks || 3000;
    series.forEach(function (s) {
      var pts = s.points.filter(function (p) { return p.y !== null && !isNaN(p.y) && (kind !== "log" || p.y > 0); });
      if (!pts.length) return;
      var line = el("polyline", { points: pts.map(function (p) { return x(p.x) + "," + y(p.y); }).join(" "),
        stroke: s.color, "data-candidate": s.id, "class": s.selected ? "selected" : null });
      line.appendChild(el("title", {}, s.label));
      svg.appendChild(line);
      var marks = total <= maxMarks ? pts : pts.slice(-1);
      marks.forEach(function (p) {
        var dot = el("circle", { cx: x(p.x), cy: y(p.y), r: 2.5, fill: s.color, "class": "point",
                                 "data-seq": p.seq, "data-candidate": s.id });
        dot.appendChild(el("title", {}, s.label + ", epoch " + p.x + ": " + formatNumber(p.y)));
        svg.appendChild(dot);
      });
    });
  }

  // The 2-D front of (max y, min x): sorted by x, keep each point better than all before it.
  function paretoFront(points) {
    var sorted = points.filter(function (p) { return p.x !== null && p.y !== null; })
      .slice().sort(function (a, b) { return a.x - b.x || b.y - a.y; });
    var front = [], best = -Infinity;
    sorted.forEach(function (p) { if (p.y > best) { front.push(p); best = p.y; } });
    return front;
  }

  // points: [{id, x, y, label, href}]; the front is drawn as a step line and its points get class "front".
  function scatter(svg, points, opts) {
    clear(svg);
    var box = { W: 640, H: 300, L: 52, R: 12, T: 10, B: 34 };
    var usable = points.filter(function (p) { return p.x !== null && p.x !== undefined && p.y !== null && p.x > 0; });
    svg.setAttribute("data-points", usable.length);
    if (!usable.length) return [];
    var xs = usable.map(function (p) { return p.x; }), ys = usable.map(function (p) { return p.y; });
    var x = scale("log", Math.min.apply(null, xs) / 1.2, Math.max.apply(null, xs) * 1.2, box.L, box.W - box.R);
    var yLo = Math.min.apply(null, ys), yHi = Math.max.apply(null, ys);
    var pad = (yHi - yLo) * 0.05 || 0.05;
    var y = scale("linear", Math.max(0, yLo - pad), Math.min(1, yHi + pad), box.H - box.B, box.T);
    axes(svg, x, y, box, { x: opts.xLabel + " (log)", y: opts.yLabel });
    var front = paretoFront(usable);
    var onFront = {};
    front.forEach(function (p) { onFront[p.id] = true; });
    if (front.length > 1) {
      var steps = [];
      front.forEach(function (p, i) {
        if (i) steps.push(x(p.x) + "," + y(front[i - 1].y));
        steps.push(x(p.x) + "," + y(p.y));
      });
      svg.appendChild(el("polyline", { points: steps.join(" "), "class": "front-line" }));
    }
    var byId = {};
    var marks = document.createDocumentFragment();
    usable.forEach(function (p) {
      byId[p.id] = p;
      var dot = el("circle", { cx: x(p.x), cy: y(p.y), r: onFront[p.id] ? 4 : 2.5,
        "class": "scatter-point" + (onFront[p.id] ? " front" : ""), "data-candidate": p.id });
      dot.appendChild(el("title", {}, p.label + " — " + opts.xLabel + " " + formatNumber(p.x) + ", " + opts.yLabel + " " + p.y.toFixed(4)));
      marks.appendChild(dot);
    });
    svg.appendChild(marks);
    // One listener for every point (thousands of them), replaced at each redraw.
    svg.onclick = opts.onClick ? function (event) {
      var id = event.target.getAttribute && event.target.getAttribute("data-candidate");
      if (id && byId[id]) opts.onClick(byId[id]);
    } : null;
    return front;
  }

  // A step line of [{t (ms), y}] over wall-clock time.
  function stepChart(svg, points, opts) {
    clear(svg);
    var box = { W: 640, H: 160, L: 52, R: 12, T: 8, B: 30 };
    if (!points.length) return;
    var now = opts.now || Date.now();
    var t0 = points[0].t, t1 = Math.max(now, points[points.length - 1].t, t0 + 1000);
    var ys = points.map(function (p) { return p.y; });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    var pad = (hi - lo) * 0.1 || 0.02;
    var x = scale("linear", 0, (t1 - t0) / 60000, box.L, box.W - box.R);
    var y = scale("linear", Math.max(0, lo - pad), Math.min(1, hi + pad), box.H - box.B, box.T);
    axes(svg, x, y, box, { x: "minutes since the first result", y: opts.yLabel });
    var pts = [];
    points.forEach(function (p, i) {
      var px = x((p.t - t0) / 60000);
      if (i) pts.push(px + "," + y(points[i - 1].y));
      pts.push(px + "," + y(p.y));
    });
    pts.push(x((t1 - t0) / 60000) + "," + y(points[points.length - 1].y));
    svg.appendChild(el("polyline", { points: pts.join(" "), "class": "best-line" }));
    points.forEach(function (p) {
      var dot = el("circle", { cx: x((p.t - t0) / 60000), cy: y(p.y), r: 2.5, "class": "best-point" });
      dot.appendChild(el("title", {}, formatNumber(p.y) + (p.label ? " — " + p.label : "")));
      svg.appendChild(dot);
    });
  }

  global.NASCharts = { el: el, clear: clear, colorFor: colorFor, formatNumber: formatNumber, scale: scale,
                       lineChart: lineChart, scatter: scatter, paretoFront: paretoFront, stepChart: stepChart };
})(window);
