// A line chart on a canvas: the last hour of one figure, one point a second. Written
// for the console (no library): it keeps at most `span` points and redraws on push.

export class LineChart {
  constructor(canvas, { span = 3600, color = '#2757c9' } = {}) {
    this.canvas = canvas;
    this.span = span;
    this.color = color;
    this.points = [];
  }

  push(t, v) {
    this.points.push([t, v]);
    if (this.points.length > this.span) this.points.splice(0, this.points.length - this.span);
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const pts = this.points;
    const now = pts.length ? pts[pts.length - 1][0] : 0;
    const t0 = now - this.span * 1000;
    const { g, w, h, pad, max } = frame(c, { l: 44, r: 8, t: 8, b: 18 }, pts.map(([, v]) => v));
    g.fillText('-60 min', pad.l, h - 4);
    g.fillText('now', w - pad.r - 22, h - 4);
    if (pts.length < 2) return;
    const x = (t) => pad.l + (w - pad.l - pad.r) * (t - t0) / (now - t0);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
    g.strokeStyle = this.color;
    g.lineWidth = 1.5;
    g.beginPath();
    pts.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
  }
}

/** Sizes `canvas` for the screen, clears it and draws the value grid for `values`
 * (nulls skipped): the context, the size, the padding and the top of the scale. */
function frame(canvas, pad, values) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  let max = 0;
  for (const v of values) if (v != null) max = Math.max(max, v);
  max = max > 0 ? niceCeil(max) : 1;
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#d6dbe0';
  g.fillStyle = '#5b6570';
  g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 2);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(format(max * i / 2), 4, y + 4);
  }
  return { g, w, h, pad, max };
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function format(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k` : `${Math.round(v * 10) / 10}`;
}

/** A static chart of several series over the same labels (e.g. users by tier by week),
 * with a legend in the top left. */
export function lines(canvas, labels, series) {
  const values = series.flatMap((s) => s.values);
  const { g, w, h, pad, max } = frame(canvas, { l: 44, r: 8, t: 22, b: 18 }, values);
  if (labels.length) { g.fillText(labels[0], pad.l, h - 4); g.fillText(labels[labels.length - 1], w - pad.r - 64, h - 4); }
  const n = Math.max(labels.length - 1, 1);
  const x = (i) => pad.l + (w - pad.l - pad.r) * i / n;
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
  let lx = pad.l;
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = 1.5;
    g.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v == null) { drawing = false; return; }
      if (drawing) g.lineTo(x(i), y(v)); else g.moveTo(x(i), y(v));
      drawing = true;
    });
    g.stroke();
    if (!s.name) continue;
    g.fillRect(lx, 8, 10, 3);
    g.fillText(s.name, lx + 14, 13);
    lx += 22 + g.measureText(s.name).width + 12;
  }
}
