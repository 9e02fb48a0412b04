// plot.js: a small SVG chart for the dashboard (log or linear axes, lines,
// 95% bands, points with error bars, censored points drawn as bound arrows,
// vertical markers). Plain SVG, no library: every element carries a class and
// a data-series attribute so tests and CSS can address it.
const SVG = 'http://www.w3.org/2000/svg';

export function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (parent) parent.appendChild(node);
  return node;
}

const SUPERSCRIPT = { '-': '\u207b', 0: '\u2070', 1: '\u00b9', 2: '\u00b2', 3: '\u00b3',
  4: '\u2074', 5: '\u2075', 6: '\u2076', 7: '\u2077', 8: '\u2078', 9: '\u2079' };

function decadeLabel(k) {
  if (k === 0) return '1';
  if (k === 1) return '10';
  return '10' + String(k).split('').map((c) => SUPERSCRIPT[c]).join('');
}

function niceStep(span, target) {
  const raw = span / target;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

// Plain decimals between 1e-4 and 1e5 (0.0005, 2, 1000), else 5e-6 style.
function shortNumber(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-4) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

function logLabel(v) {
  const k = Math.round(Math.log10(v));
  if (Math.abs(v / Math.pow(10, k) - 1) < 1e-9 && (v >= 1e5 || v < 1e-4)) return decadeLabel(k);
  return shortNumber(v);
}

// One axis: maps data values to pixels and produces ticks with labels.
class Axis {
  constructor(log, lo, hi, p0, p1) {
    this.log = log;
    this.p0 = p0;
    this.p1 = p1;
    const f = (v) => (log ? Math.log10(v) : v);
    let a = f(lo);
    let b = f(hi);
    if (!(b > a)) { a -= log ? 0.5 : Math.abs(a) * 0.1 + 1; b += log ? 0.5 : Math.abs(b) * 0.1 + 1; }
    const pad = (b - a) * 0.06;
    this.a = a - pad;
    this.b = b + pad;
    this.f = f;
  }
  px(v) { return this.p0 + (this.f(v) - this.a) / (this.b - this.a) * (this.p1 - this.p0); }
  ok(v) { return Number.isFinite(v) && (!this.log || v > 0); }
  ticks() {
    const out = [];
    if (this.log) {
      const k0 = Math.ceil(this.a - 1e-9);
      const k1 = Math.floor(this.b + 1e-9);
      const decades = k1 - k0 + 1;
      const step = Math.max(1, Math.ceil(decades / 8));
      for (let k = Math.floor(this.a); k <= Math.ceil(this.b); k++) {
        const major = k >= k0 && k <= k1 && (k - k0) % step === 0;
        for (const m of [1, 2, 5]) {
          const v = m * Math.pow(10, k);
          const t = Math.log10(v);
          if (t < this.a || t > this.b) continue;
          if (m === 1 && major) out.push({ v, label: logLabel(v), major: true });
          else if (decades <= 2 && step === 1) out.push({ v, label: logLabel(v), major: false });
          else if (decades <= 5) out.push({ v, label: '', major: false });
        }
      }
      if (out.filter((t) => t.label).length < 3) {
        // Under a decade: evenly spaced values, all labelled.
        const lo = Math.pow(10, this.a);
        const hi = Math.pow(10, this.b);
        const s = niceStep(hi - lo, 5);
        out.length = 0;
        for (let v = Math.ceil(lo / s) * s; v <= hi; v += s) {
          const r = Number(v.toPrecision(12));
          out.push({ v: r, label: shortNumber(r), major: true });
        }
      }
    } else {
      const s = niceStep(this.b - this.a, 6);
      for (let v = Math.ceil(this.a / s) * s; v <= this.b + 1e-12; v += s) {
        out.push({ v, label: shortNumber(Number(v.toPrecision(12))), major: true });
      }
    }
    return out;
  }
}

export class Plot {
  // opts: {id, title, xLabel, yLabel, xLog=true, yLog=true, width=560, height=340}
  constructor(opts) {
    this.o = Object.assign({ xLog: true, yLog: true, width: 560, height: 340 }, opts);
    this.layers = [];
    this.xs = [];
    this.ys = [];
    this.legend = [];
  }
  extend(xs, ys) {
    for (const x of xs) if (Number.isFinite(x) && (!this.o.xLog || x > 0)) this.xs.push(x);
    for (const y of ys) if (Number.isFinite(y) && (!this.o.yLog || y > 0)) this.ys.push(y);
  }
  addLegend(series, label, cls, kind, shape) { if (label) this.legend.push({ series, label, cls, kind, shape }); }

  // A filled band between lo and hi: points [{x, lo, hi}]. `fit: false`
  // leaves the axes to the other layers (a band can be decades wide).
  band(points, { series, cls = 'band', label, fit = true } = {}) {
    const pts = points.filter((p) => Number.isFinite(p.lo) && Number.isFinite(p.hi));
    if (fit) this.extend(pts.map((p) => p.x), pts.flatMap((p) => [p.lo, p.hi]));
    this.layers.push({ kind: 'band', pts, series, cls });
    this.addLegend(series, label, cls, 'band');
  }
  // A polyline: points [{x, y}] (non-finite points break the line).
  // `title` (default: the label) is shown on hover, also for lines left out
  // of the legend (label: null).
  line(points, { series, cls = 'line', label, title, fit = true } = {}) {
    if (fit) this.extend(points.map((p) => p.x), points.map((p) => p.y));
    this.layers.push({ kind: 'line', pts: points, series, cls, title: title || label });
    this.addLegend(series, label, cls, 'line');
  }
  // A legend line without a key (e.g. "+ 132 more runs").
  note(text) { this.legend.push({ series: 'note', label: text, cls: 'note', kind: 'text' }); }
  // Markers with optional vertical error bars: points [{x, y, lo, hi, title}];
  // `size`: the marker's width in pixels (circle 8, square 5 by default).
  points(points, { series, cls = 'pt', label, shape = 'circle', size } = {}) {
    this.extend(points.map((p) => p.x), points.flatMap((p) => [p.y, p.lo, p.hi]));
    this.layers.push({ kind: 'points', pts: points, series, cls, shape, size });
    this.addLegend(series, label, cls, 'point', shape);
  }
  // Censored values: points [{x, y, dir: 'up'|'down', title}] drawn as a bar
  // with an arrow pointing to where the true value lies.
  bounds(points, { series, cls = 'bound', label } = {}) {
    this.extend(points.map((p) => p.x), points.map((p) => p.y));
    this.layers.push({ kind: 'bounds', pts: points, series, cls });
    this.addLegend(series, label, cls, 'bound');
  }
  // A vertical marker at x, optionally with a shaded interval [lo, hi] or an
  // arrow (dir 'left'|'right') when x is only a bound; its text sits at the
  // bottom, or at the top with textAt: 'top' (two markers in one plot).
  vline(x, { series, cls = 'marker', label, lo, hi, dir, text, textAt = 'bottom' } = {}) {
    this.extend([x], []);
    this.layers.push({ kind: 'vline', x, lo, hi, dir, series, cls, text, textAt });
    this.addLegend(series, label, cls, 'vline');
  }

  render() {
    const { width, height, xLog, yLog } = this.o;
    const m = { l: 74, r: 16, t: this.o.title ? 30 : 12, b: 52 };
    const x0 = Math.min(...this.xs);
    const x1 = Math.max(...this.xs);
    const y0 = Math.min(...this.ys);
    const y1 = Math.max(...this.ys);
    const wrap = document.createElement('figure');
    wrap.className = 'plot';
    wrap.style.maxWidth = `${width}px`;  // a long legend wraps instead of widening the figure
    if (this.o.id) wrap.dataset.plot = this.o.id;
    const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'aria-label': this.o.title || '' }, null);
    wrap.appendChild(svg);
    if (!this.xs.length || !this.ys.length) {
      el('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'empty' }, svg)
        .textContent = 'no data';
      return wrap;
    }
    const X = new Axis(xLog, x0, x1, m.l, width - m.r);
    const Y = new Axis(yLog, y0, y1, height - m.b, m.t);
    const clipId = `clip-${Math.random().toString(36).slice(2)}`;
    const clip = el('clipPath', { id: clipId }, el('defs', {}, svg));
    el('rect', { x: m.l, y: m.t, width: width - m.l - m.r, height: height - m.t - m.b }, clip);

    if (this.o.title) {
      el('text', { x: m.l, y: 18, class: 'title' }, svg).textContent = this.o.title;
    }
    // Grid and ticks.
    const grid = el('g', { class: 'grid' }, svg);
    for (const t of X.ticks()) {
      const px = X.px(t.v);
      el('line', { x1: px, x2: px, y1: m.t, y2: height - m.b, class: t.major ? 'major' : 'minor' }, grid);
      if (t.label) {
        el('text', { x: px, y: height - m.b + 16, 'text-anchor': 'middle', class: 'tick' }, svg)
          .textContent = t.label;
      }
    }
    for (const t of Y.ticks()) {
      const py = Y.px(t.v);
      el('line', { x1: m.l, x2: width - m.r, y1: py, y2: py, class: t.major ? 'major' : 'minor' }, grid);
      if (t.label) {
        el('text', { x: m.l - 6, y: py + 4, 'text-anchor': 'end', class: 'tick' }, svg)
          .textContent = t.label;
      }
    }
    el('rect', { x: m.l, y: m.t, width: width - m.l - m.r, height: height - m.t - m.b,
      class: 'frame' }, svg);
    el('text', { x: (m.l + width - m.r) / 2, y: height - 12, 'text-anchor': 'middle',
      class: 'axis-label' }, svg).textContent = this.o.xLabel || '';
    el('text', { x: 0, y: 0, 'text-anchor': 'middle', class: 'axis-label',
      transform: `translate(16 ${(m.t + height - m.b) / 2}) rotate(-90)` }, svg)
      .textContent = this.o.yLabel || '';

    const body = el('g', { 'clip-path': `url(#${clipId})` }, svg);
    for (const layer of this.layers) this.drawLayer(body, layer, X, Y, m, height);

    if (this.legend.length) {
      const legend = document.createElement('figcaption');
      legend.className = 'legend';
      for (const item of this.legend) {
        const span = document.createElement('span');
        span.className = 'legend-item';
        const key = el('svg', { width: 22, height: 12, class: `key ${item.cls}` });
        if (item.kind === 'band') el('rect', { x: 1, y: 2, width: 20, height: 8, class: item.cls }, key);
        else if (item.kind === 'point') {
          el('line', { x1: 11, x2: 11, y1: 0, y2: 12, class: `${item.cls} err` }, key);
          if (item.shape === 'square') el('rect', { x: 8, y: 3, width: 6, height: 6, class: item.cls }, key);
          else el('circle', { cx: 11, cy: 6, r: 3.5, class: item.cls }, key);
        } else if (item.kind === 'bound') el('path', { d: 'M6 3 H16 M11 3 V11 M8 8 L11 11 L14 8', class: item.cls }, key);
        else if (item.kind === 'vline') el('line', { x1: 11, x2: 11, y1: 0, y2: 12, class: item.cls }, key);
        else if (item.kind !== 'text') el('line', { x1: 1, x2: 21, y1: 6, y2: 6, class: item.cls }, key);
        span.appendChild(key);
        span.appendChild(document.createTextNode(item.label));
        legend.appendChild(span);
      }
      wrap.appendChild(legend);
    }
    return wrap;
  }

  drawLayer(body, layer, X, Y, m, height) {
    const g = el('g', { class: `series ${layer.cls}`, 'data-series': layer.series || layer.kind }, body);
    if (layer.kind === 'band') {
      const pts = layer.pts.filter((p) => X.ok(p.x) && Y.ok(p.lo) && Y.ok(p.hi));
      if (pts.length < 2) return;
      const upper = pts.map((p) => `${X.px(p.x).toFixed(1)},${Y.px(p.hi).toFixed(1)}`);
      const lower = pts.slice().reverse().map((p) => `${X.px(p.x).toFixed(1)},${Y.px(p.lo).toFixed(1)}`);
      el('path', { d: `M${upper.join('L')}L${lower.join('L')}Z`, class: layer.cls }, g);
    } else if (layer.kind === 'line') {
      let d = '';
      let pen = false;
      for (const p of layer.pts) {
        if (!X.ok(p.x) || !Y.ok(p.y)) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${X.px(p.x).toFixed(1)},${Y.px(p.y).toFixed(1)}`;
        pen = true;
      }
      if (d) {
        const path = el('path', { d, class: layer.cls, fill: 'none' }, g);
        if (layer.title) el('title', {}, path).textContent = layer.title;
      }
    } else if (layer.kind === 'points') {
      for (const p of layer.pts) {
        if (!X.ok(p.x) || !Y.ok(p.y)) continue;
        const px = X.px(p.x);
        const pg = el('g', { class: 'point' }, g);
        if (Y.ok(p.lo) && Y.ok(p.hi)) {
          el('line', { x1: px, x2: px, y1: Y.px(p.lo), y2: Y.px(p.hi), class: `${layer.cls} err` }, pg);
          for (const v of [p.lo, p.hi]) {
            el('line', { x1: px - 4, x2: px + 4, y1: Y.px(v), y2: Y.px(v), class: `${layer.cls} err` }, pg);
          }
        }
        const half = (layer.size || (layer.shape === 'square' ? 5 : 8)) / 2;
        const mk = layer.shape === 'square'
          ? el('rect', { x: px - half, y: Y.px(p.y) - half, width: 2 * half, height: 2 * half, class: layer.cls }, pg)
          : el('circle', { cx: px, cy: Y.px(p.y), r: half, class: layer.cls }, pg);
        if (p.title) el('title', {}, mk).textContent = p.title;
      }
    } else if (layer.kind === 'bounds') {
      for (const p of layer.pts) {
        if (!X.ok(p.x) || !Y.ok(p.y)) continue;
        const px = X.px(p.x);
        const py = Y.px(p.y);
        const s = p.dir === 'up' ? -1 : 1;  // screen direction of the arrow
        const path = el('path', { class: `${layer.cls} bound-mark`,
          d: `M${px - 6},${py} H${px + 6} M${px},${py} V${py + s * 18} M${px - 4},${py + s * 13} L${px},${py + s * 18} L${px + 4},${py + s * 13}`,
          'data-dir': p.dir }, g);
        if (p.title) el('title', {}, path).textContent = p.title;
      }
    } else if (layer.kind === 'vline') {
      if (!X.ok(layer.x)) return;
      const px = X.px(layer.x);
      if (X.ok(layer.lo) && X.ok(layer.hi)) {
        el('rect', { x: X.px(layer.lo), y: m.t, width: Math.max(1, X.px(layer.hi) - X.px(layer.lo)),
          height: height - m.t - m.b, class: `${layer.cls} shade` }, g);
      }
      el('line', { x1: px, x2: px, y1: m.t, y2: height - m.b, class: layer.cls }, g);
      if (layer.dir) {
        const s = layer.dir === 'right' ? 1 : -1;
        const y = layer.textAt === 'top' ? m.t + 30 : m.t + 14;
        el('path', { d: `M${px},${y} H${px + s * 24} M${px + s * 18},${y - 5} L${px + s * 24},${y} L${px + s * 18},${y + 5}`,
          class: layer.cls }, g);
      }
      if (layer.text) {
        el('text', { x: px + 4, y: layer.textAt === 'top' ? m.t + 14 : height - m.b - 6,
          class: `${layer.cls} marker-text` }, g)
          .textContent = layer.text;
      }
    }
  }
}
