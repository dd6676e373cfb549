// Architecture diagrams drawn from an architecture's JSON as SVG: the cell graph for cell
// spaces (nodes 0..3, one labelled edge per non-"none" op), a chain of blocks for the chain,
// mobile and text spaces, and a plain list of decisions for any other space.
(function (global) {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var OP_COLORS = { conv3x3: "#2458d6", conv1x1: "#16a085", skip: "#7f8c8d", avgpool3x3: "#e67e22" };

  function el(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function root(width, height, space) {
    return el("svg", { viewBox: "0 0 " + width + " " + height, "class": "arch-diagram", "data-space": space,
                       role: "img", "aria-label": space + " architecture", width: "100%",
                       style: "max-width:" + width + "px" });
  }

  function arrowDefs(svg) {
    var defs = el("defs");
    var marker = el("marker", { id: "arrow-" + Math.random().toString(36).slice(2), viewBox: "0 0 10 10", refX: 9, refY: 5,
                                markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#556" }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    return "url(#" + marker.getAttribute("id") + ")";
  }

  // --- cell graph ---------------------------------------------------------------
  function cellDiagram(arch) {
    var W = 600, H = 250, Y = 125;
    var svg = root(W, H, "cell");
    var arrow = arrowDefs(svg);
    var xs = [50, 210, 390, 550];
    var names = ["input", "node 1", "node 2", "output"];
    var bends = { 1: 0, 2: -70, 3: -120 };
    var none = 0;
    Object.keys(arch).filter(function (k) { return /^e\d+_\d+$/.test(k); }).sort().forEach(function (edge) {
      var parts = edge.slice(1).split("_"), to = +parts[0], from = +parts[1], op = arch[edge];
      if (op === "none") { none++; return; }
      var span = to - from, bend = bends[span] || 0;
      if (edge === "e3_1") bend = 70;  // the other two-step edge goes below, so labels never collide
      var x0 = xs[from] + 22, x1 = xs[to] - 22, cx = (x0 + x1) / 2, cy = Y + bend * 1.6;
      var g = el("g", { "class": "edge", "data-edge": edge, "data-op": op });
      g.appendChild(el("path", { d: "M" + x0 + "," + Y + " Q" + cx + "," + cy + " " + x1 + "," + Y,
                                 stroke: OP_COLORS[op] || "#8e44ad", fill: "none", "stroke-width": 2,
                                 "marker-end": arrow, "stroke-dasharray": op === "skip" ? "5 4" : null }));
      var lx = 0.25 * x0 + 0.5 * cx + 0.25 * x1, ly = 0.5 * Y + 0.5 * cy;
      g.appendChild(el("rect", { x: lx - 36, y: ly - 10, width: 72, height: 18, rx: 4, fill: "#fff", stroke: OP_COLORS[op] || "#8e44ad" }));
      g.appendChild(el("text", { x: lx, y: ly + 3, "text-anchor": "middle", "class": "op" }, op));
      g.appendChild(el("title", {}, edge + ": node " + from + " → node " + to + " via " + op));
      svg.appendChild(g);
    });
    xs.forEach(function (x, i) {
      var g = el("g", { "class": "node", "data-node": i });
      g.appendChild(el("circle", { cx: x, cy: Y, r: 22, fill: i === 0 || i === 3 ? "#e8f0fe" : "#fff", stroke: "#556" }));
      g.appendChild(el("text", { x: x, y: Y + 4, "text-anchor": "middle" }, String(i)));
      g.appendChild(el("text", { x: x, y: Y + 40, "text-anchor": "middle", "class": "caption" }, names[i]));
      svg.appendChild(g);
    });
    if (none) svg.appendChild(el("text", { x: 8, y: H - 8, "class": "caption" }, none + (none > 1 ? " edges carry" : " edge carries") + " nothing (none)"));
    return svg;
  }

  // --- block chains -------------------------------------------------------------
  function chainOfBlocks(space, blocks) {
    var W = 420, BH = 38, GAP = 16, top = 10;
    var H = top * 2 + blocks.length * (BH + GAP) - GAP;
    var svg = root(W, H, space);
    var arrow = arrowDefs(svg);
    blocks.forEach(function (b, i) {
      var y = top + i * (BH + GAP);
      var g = el("g", { "class": "block" + (b.skipped ? " skipped" : ""), "data-kind": b.kind, "data-index": i });
      g.appendChild(el("rect", { x: 60, y: y, width: W - 120, height: BH, rx: 6, "class": "block-" + b.kind,
                                 "stroke-dasharray": b.skipped ? "5 4" : null }));
      g.appendChild(el("text", { x: W / 2, y: y + (b.detail ? 16 : 23), "text-anchor": "middle", "class": "title" }, b.title));
      if (b.detail) g.appendChild(el("text", { x: W / 2, y: y + 31, "text-anchor": "middle", "class": "caption" }, b.detail));
      if (b.group) g.appendChild(el("text", { x: 54, y: y + 23, "text-anchor": "end", "class": "caption" }, b.group));
      svg.appendChild(g);
      if (i < blocks.length - 1) {
        svg.appendChild(el("line", { x1: W / 2, x2: W / 2, y1: y + BH, y2: y + BH + GAP - 1, stroke: "#556", "marker-end": arrow }));
      }
    });
    return svg;
  }

  function chainBlocks(arch) {
    var blocks = [{ kind: "io", title: "input image" }];
    for (var i = 1; i <= (arch.blocks || 0); i++) {
      var k = arch["kernel_" + i];
      blocks.push({ kind: "conv", title: "conv " + k + "×" + k + ", " + arch["channels_" + i] + " channels",
                    detail: "batch norm · " + arch.activation + " · " + (arch.pooling === "none" ? "no pooling" : arch.pooling + " pool"),
                    group: "block " + i });
    }
    blocks.push({ kind: "pool", title: "global average pool" });
    if (arch.dropout) blocks.push({ kind: "dropout", title: "dropout " + arch.dropout });
    blocks.push({ kind: "io", title: "linear → classes" });
    return blocks;
  }

  function mobileBlocks(arch) {
    var ids = Object.keys(arch).map(function (k) { return /^s(\d+)_b(\d+)_expand$/.exec(k); }).filter(Boolean)
      .map(function (m) { return [+m[1], +m[2]]; })
      .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    var blocks = [{ kind: "io", title: "input image" },
                  { kind: "conv", title: "stem conv 3×3", detail: "width × " + arch.width }];
    ids.forEach(function (sb) {
      var key = "s" + sb[0] + "_b" + sb[1], expand = arch[key + "_expand"], kernel = arch[key + "_kernel"];
      var skipped = expand === "skip";
      blocks.push({ kind: skipped ? "skip" : "mbconv", skipped: skipped, group: "stage " + sb[0],
                    title: skipped ? "skipped (identity)" : "MBConv expand ×" + expand + ", kernel " + kernel + "×" + kernel,
                    detail: skipped ? null : (sb[1] === 1 && sb[0] > 1 ? "stride 2 · " : "") + "1×1 → depthwise → 1×1" });
    });
    blocks.push({ kind: "conv", title: "head conv 1×1" });
    blocks.push({ kind: "io", title: "pool · linear → classes" });
    return blocks;
  }

  function textBlocks(arch) {
    var enc = arch.encoder, encoder;
    if (enc === "conv") encoder = { title: "TextCNN, kernels " + arch.conv_kernels, detail: arch.hidden + " filters per kernel" };
    else if (enc === "gru") encoder = { title: (arch.gru_bidirectional ? "bidirectional " : "") + "GRU × " + arch.gru_layers, detail: "hidden " + arch.hidden };
    else encoder = { title: "transformer × " + arch.tf_layers + ", " + arch.tf_heads + " heads", detail: "feed-forward " + arch.hidden };
    return [{ kind: "io", title: "token ids" },
            { kind: "embed", title: "embedding, " + arch.embed_dim + " dims" },
            { kind: "encoder", title: encoder.title, detail: encoder.detail },
            { kind: "pool", title: arch.pooling + " pool over time" }]
      .concat(arch.dropout ? [{ kind: "dropout", title: "dropout " + arch.dropout }] : [])
      .concat([{ kind: "io", title: "linear → classes" }]);
  }

  function genericBlocks(arch) {
    return Object.keys(arch).map(function (k) { return { kind: "decision", title: k + " = " + JSON.stringify(arch[k]) }; });
  }

  function diagram(spaceName, arch) {
    if (!arch || typeof arch !== "object") return null;
    if (spaceName === "cell") return cellDiagram(arch);
    if (spaceName === "chain") return chainOfBlocks("chain", chainBlocks(arch));
    if (spaceName === "mobile") return chainOfBlocks("mobile", mobileBlocks(arch));
    if (spaceName === "text") return chainOfBlocks("text", textBlocks(arch));
    return chainOfBlocks(spaceName || "generic", genericBlocks(arch));
  }

  // <div data-arch-config="json-script-id" data-arch-key="arch"> is filled in on load.
  function drawAll() {
    document.querySelectorAll("[data-arch-config]").forEach(function (box) {
      var source = document.getElementById(box.dataset.archConfig);
      if (!source) return;
      var config = JSON.parse(source.textContent);
      var svg = diagram(config.space.name, config[box.dataset.archKey || "arch"]);
      while (box.firstChild) box.removeChild(box.firstChild);
      if (svg) box.appendChild(svg);
    });
  }

  global.NASArch = { diagram: diagram, drawAll: drawAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})(window);
