// The match explorer's front end (anywidget ESM). Python (ignn_lab.viz.widgets) sends three traits:
//   scene     - per-setting pictures: lr, son, recurrence, model_son ({src, h, w}) and descriptions;
//   selection - what the selected query shows: boxes (top, left, h, w), colours, patch pictures, the model's view;
//   status    - message, progress fraction, busy, error.
// The browser sends {type: "click", panel, row, col} (a pixel of the LR or recurrence panel) and
// {type: "move", drow, dcol} (arrow keys). Every picture is drawn so that its pixel (r, c) covers
// [c, c+1) x [r, r+1) in its panel's coordinates; a box is the rect (left, top, w, h) there.

const NS = "http://www.w3.org/2000/svg";
const CELL = 92; // screen pixels of one patch picture

function svg(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function html(tag, attrs, parent, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

const num = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toPrecision(digits));

function box(parent, b, attrs, origin = [0, 0]) {
  return svg("rect", {
    x: b[1] - origin[1], y: b[0] - origin[0], width: b[3], height: b[2], fill: "none",
    "vector-effect": "non-scaling-stroke", "data-box": b.join(","), ...attrs,
  }, parent);
}

// A picture scaled to fit size x size at (x, y); boxes go into .marks (same pixel coordinates).
function picture(parent, pic, x, y, size, panel) {
  const f = size / Math.max(pic.w, pic.h);
  const g = svg("g", { transform: `translate(${x},${y}) scale(${f})`, "data-panel": panel }, parent);
  const img = svg("image", {
    href: pic.src, x: 0, y: 0, width: pic.w, height: pic.h, preserveAspectRatio: "none",
    "image-rendering": "optimizeSpeed", style: "image-rendering: pixelated", "data-panel": panel,
  }, g);
  const marks = svg("g", { class: "ix-marks" }, g);
  return { g, img, marks, f, x, y, w: pic.w, h: pic.h };
}

function centre(p, b) {
  return [p.x + p.f * (b[1] + b[3] / 2), p.y + p.f * (b[0] + b[2] / 2)];
}

function crop(crop, b, color, label) {
  const s = svg("svg", { width: CELL, height: CELL, class: "ix-crop", "aria-label": label });
  const p = picture(s, crop, 0, 0, CELL, "crop");
  box(p.marks, b, { stroke: color, "stroke-width": 2 }, crop.origin);
  return s;
}

function image(src, label) {
  return html("img", { src, width: CELL, height: CELL, class: "ix-px", alt: label });
}

function cell(parent, content, caption, color) {
  const c = html("figure", { class: "ix-cell" }, parent);
  c.appendChild(content);
  const cap = html("figcaption", {}, c, caption);
  if (color) cap.style.borderBottom = `3px solid ${color}`;
  return c;
}

function render({ model, el }) {
  const root = html("div", { class: "ix-root", tabindex: 0, "data-lm-suppress-shortcuts": "true" }, el);
  const status = html("div", { class: "ix-status" }, root);
  const statusText = html("span", { class: "ix-status-text" }, status);
  const bar = html("progress", { max: 1, class: "ix-progress" }, status);
  const top = svg("svg", { class: "ix-top" }, root);
  const legend = html("div", { class: "ix-legend" }, root);
  const strip = html("div", { class: "ix-neighbours" }, root);
  const modelBox = html("div", { class: "ix-model" }, root);
  let panels = {};
  let edges = null;

  function onClick(e, key) {
    const p = panels[key];
    const r = p.img.getBoundingClientRect();
    const col = Math.min(p.w - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * p.w)));
    const row = Math.min(p.h - 1, Math.max(0, Math.floor(((e.clientY - r.top) / r.height) * p.h)));
    model.send({ type: "click", panel: key, row, col });
    root.focus({ preventScroll: true });
  }

  function drawScene() {
    const sc = model.get("scene");
    const D = model.get("display_size");
    top.replaceChildren();
    panels = {};
    if (!sc.lr) return;
    const gap = 40, titleH = 36;
    const defs = [
      ["lr", sc.lr, `LR ${sc.lr.h}×${sc.lr.w}: click a patch (arrows move it)`, "dashed: where its HR patches come from"],
      ["son", sc.son, `son ${sc.son.h}×${sc.son.w} (LR/${sc.scale}): k nearest`, "dashed white: search window"],
      ["recurrence", sc.recurrence, "recurrence map: best-match distance", "log colour scale; click: jump to that patch"],
    ];
    let x = 0, height = 0;
    for (const [key, pic, title, sub] of defs) {
      svg("text", { x, y: 13, class: "ix-title" }, top).textContent = title;
      svg("text", { x, y: 28, class: "ix-subtitle" }, top).textContent = sub;
      panels[key] = picture(top, pic, x, titleH, D, key);
      height = Math.max(height, pic.h * panels[key].f);
      x += D + gap;
    }
    top.setAttribute("width", x - gap);
    top.setAttribute("height", titleH + height + 2);
    edges = svg("g", { class: "ix-edges" }, top);
    for (const key of ["lr", "recurrence"]) {
      panels[key].img.addEventListener("click", (e) => onClick(e, key));
      panels[key].img.style.cursor = "crosshair";
    }
  }

  function drawTop(sel) {
    const { lr, son, recurrence } = panels;
    for (const p of [lr, son, recurrence]) p.marks.replaceChildren();
    edges.replaceChildren();
    const k = sel.neighbours.length;
    for (const n of sel.neighbours) {
      box(lr.marks, n.hr_source_box, { stroke: n.color, "stroke-width": 1, "stroke-dasharray": "3 2", class: "ix-hr-source" });
      box(son.marks, n.son_box, { stroke: n.color, "stroke-width": 2, class: "ix-neighbour" });
    }
    if (sel.window) box(son.marks, sel.window, { stroke: "white", "stroke-width": 1, "stroke-dasharray": "4 3", class: "ix-window" });
    box(lr.marks, sel.query.box, { stroke: "red", "stroke-width": 2, class: "ix-query" });
    box(recurrence.marks, sel.query.box, { stroke: "cyan", "stroke-width": 2, class: "ix-query" });
    const [qx, qy] = centre(lr, sel.query.box);
    for (let r = k - 1; r >= 0; r--) { // nearest drawn last, on top
      const n = sel.neighbours[r];
      const [nx, ny] = centre(son, n.son_box);
      svg("line", { x1: qx, y1: qy, x2: nx, y2: ny, stroke: n.color, "stroke-width": 1.2, opacity: 0.9 }, edges);
    }
  }

  function drawStrip(sel) {
    strip.replaceChildren();
    const k = sel.neighbours.length;
    strip.style.gridTemplateColumns = `repeat(${k + 1}, ${CELL + 8}px)`;
    strip.dataset.query = `${sel.query.row},${sel.query.col}`;
    strip.dataset.neighbours = sel.neighbours.map((n) => n.son_box.slice(0, 2).join(",")).join(";");
    cell(strip, crop(sel.query_ctx, sel.query.box, "red", "query"), `query (${sel.query.row}, ${sel.query.col})`, "red");
    sel.neighbours.forEach((n, r) =>
      cell(strip, crop(sel.son_ctx[r], n.son_box, n.color, `neighbour ${n.rank}`), `#${n.rank} son d=${num(n.distance)}`, n.color));
    cell(strip, image(sel.ground_truth, "ground truth"), "ground-truth HR");
    sel.hr_raw.forEach((src, r) => cell(strip, image(src, `HR patch ${r + 1}`), `#${r + 1} HR patch`));
    cell(strip, image(sel.aggregate, "aggregate"), `aggregate: ${num(sel.psnr, 3)} dB vs HR`);
    sel.hr_adapn.forEach((src, r) =>
      cell(strip, image(src, `AdaPN ${r + 1}`), `#${r + 1} AdaPN w=${Number(sel.neighbours[r].weight).toFixed(2)}`));
  }

  function drawModel(sel) {
    modelBox.replaceChildren();
    const m = sel.model;
    const sc = model.get("scene");
    modelBox.style.display = m ? "block" : "none";
    if (!m) return;
    html("div", { class: "ix-heading" }, modelBox, m.description);
    const row = html("div", { class: "ix-model-row" }, modelBox);
    const D = model.get("display_size");
    if (sc.model_son && m.neighbours.length) {
      const s = svg("svg", { class: "ix-model-son" }, row);
      svg("text", { x: 0, y: 13, class: "ix-title" }, s).textContent = `model's son ${sc.model_son.h}×${sc.model_son.w}`;
      const p = picture(s, sc.model_son, 0, 20, D * 0.75, "model_son");
      s.setAttribute("width", D * 0.75);
      s.setAttribute("height", 22 + p.h * p.f);
      for (const n of m.neighbours)
        box(p.marks, n.son_box, { stroke: n.color, "stroke-width": 1 + 3 * n.weight_lr, class: "ix-model-neighbour" });
    }
    const c = m.crops;
    for (const [key, title, psnr] of [["sr", `SR (${m.name})`, c.psnr_sr], ["bicubic", "bicubic", c.psnr_bicubic], ["hr", "HR", null]]) {
      const fig = html("figure", { class: "ix-model-crop" }, row);
      html("img", { src: c[key], class: "ix-px", width: 160, height: 160, alt: title }, fig);
      html("figcaption", {}, fig, psnr === null ? title : `${title} ${num(psnr, 4)} dB`);
    }
    if (m.neighbours.length) {
      const table = html("table", { class: "ix-table" }, row);
      const head = html("tr", {}, html("thead", {}, table));
      for (const t of ["rank", "son box", "distance", "w (LR)", "w (HR)"]) html("th", {}, head, t);
      const body = html("tbody", {}, table);
      for (const n of m.neighbours) {
        const tr = html("tr", {}, body);
        html("td", { style: `border-left: 4px solid ${n.color}` }, tr, `#${n.rank}`);
        html("td", {}, tr, `(${n.son_box[0]}, ${n.son_box[1]})`);
        html("td", {}, tr, num(n.distance));
        html("td", {}, tr, Number(n.weight_lr).toFixed(3));
        html("td", {}, tr, n.weight_hr === null ? "–" : Number(n.weight_hr).toFixed(3));
      }
    }
  }

  function drawSelection() {
    const sel = model.get("selection");
    if (!sel.query || !panels.lr) return;
    drawTop(sel);
    drawStrip(sel);
    drawModel(sel);
    const sc = model.get("scene");
    const ms = (s) => `${(1000 * s).toFixed(0)} ms`;
    legend.textContent = `${sc.label} · ${sc.graph} · colours: squared L2 distance, nearest dark (viridis) · ` +
      `query (${sel.query.row}, ${sel.query.col}) · select ${ms(sel.seconds.select)} + pictures ${ms(sel.seconds.render)}`;
    root.dataset.serial = String(sel.serial);
  }

  function drawStatus() {
    const st = model.get("status");
    statusText.textContent = st.error ? `error: ${st.error}` : st.message || "";
    status.classList.toggle("ix-error", !!st.error);
    bar.style.display = st.busy ? "inline-block" : "none";
    if (st.fraction !== null && st.fraction !== undefined) bar.value = st.fraction;
    else bar.removeAttribute("value");
  }

  function onKey(e) {
    const d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[e.key];
    if (!d) return;
    e.preventDefault();
    e.stopPropagation();
    model.send({ type: "move", drow: d[0], dcol: d[1] });
  }

  const onScene = () => { drawScene(); drawSelection(); };
  model.on("change:scene", onScene);
  model.on("change:selection", drawSelection);
  model.on("change:status", drawStatus);
  model.on("change:display_size", onScene);
  root.addEventListener("keydown", onKey);
  onScene();
  drawStatus();
  return () => {
    model.off("change:scene", onScene);
    model.off("change:selection", drawSelection);
    model.off("change:status", drawStatus);
    model.off("change:display_size", onScene);
  };
}

export default { render };
