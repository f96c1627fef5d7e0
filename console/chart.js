// A small hand-written SVG line chart: time on x (the last `windowMs`), values from 0 on y.

import { h, s } from './dom.js';

const W = 600;
const H = 170;
const PAD = { left: 56, right: 12, top: 10, bottom: 24 };

/** 1, 2, 5 × 10^n at or above v. */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

let counter = 0;

/**
 * {title, series: [{name, cls, points: [{t, v}]}], format(v) → text, windowMs, now}.
 * Screen readers get the title and the latest value of each series.
 */
export function lineChart({ title, series, format, windowMs, now }) {
  const id = `chart-${++counter}`;
  const values = series.flatMap((se) => se.points.map((p) => p.v)).filter((v) => Number.isFinite(v));
  const max = niceCeil(Math.max(0, ...values));
  const x = (t) => PAD.left + ((t - (now - windowMs)) / windowMs) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);

  const grid = [0, max / 2, max].map((v) => [
    s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }),
    s('text', { x: PAD.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, format(v)),
  ]);
  const ticks = [windowMs, windowMs / 2, 0].map((ago) =>
    s('text', {
      x: x(now - ago),
      y: H - 6,
      class: 'axis',
      'text-anchor': ago === windowMs ? 'start' : ago === 0 ? 'end' : 'middle',
    }, ago === 0 ? 'now' : `−${Math.round(ago / 60000)} min`));
  const lines = series.map((se) => {
    let d = '';
    let pen = 'M';
    for (const p of se.points) {
      if (!Number.isFinite(p.v) || p.t < now - windowMs) { pen = 'M'; continue; }
      d += `${pen}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)} `;
      pen = 'L';
    }
    return s('path', { d: d || 'M0,0', class: `line ${se.cls}`, fill: 'none' });
  });

  const latest = series.map((se) => {
    const last = [...se.points].reverse().find((p) => Number.isFinite(p.v));
    return { se, text: last ? format(last.v) : 'no data' };
  });
  const desc = latest.map(({ se, text }) => `${se.name}: ${text}`).join('; ');

  return h('figure', { class: 'chart', dataset: { points: String(Math.max(0, ...series.map((se) => se.points.length))) } },
    h('figcaption', { id: `${id}-title` }, title),
    s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-title ${id}-desc` },
      s('desc', { id: `${id}-desc` }, `Latest: ${desc}.`),
      grid, ticks, lines),
    h('ul', { class: 'legend', 'aria-hidden': 'true' },
      latest.map(({ se, text }) => h('li', {}, h('span', { class: `swatch ${se.cls}` }), `${se.name} `, h('strong', {}, text)))));
}
