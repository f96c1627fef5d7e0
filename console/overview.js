// Overview: throughput, success/failure, backlog and latency over the last minutes, drawn from
// this server's `/metrics`, which the page samples every few seconds (metrics.js).

import { lineChart } from './chart.js';
import { h, fill, describeError } from './dom.js';
import { derive, increase, sum, SAMPLE_EVERY_MS } from './metrics.js';

const WINDOW_MS = 10 * 60 * 1000;

const perSecond = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + '/s';
const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
const ms = (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v >= 10 ? 0 : 1)} ms`);

export function overview(main, { sampler }) {
  const tiles = h('div', { class: 'tiles' });
  const charts = h('div', { class: 'charts' });
  const status = h('p', { class: 'muted', id: 'overview-status' });
  fill(main,
    h('h1', { tabindex: '-1' }, 'Overview'),
    h('p', { class: 'muted' },
      `Sampled from this server's /metrics every ${SAMPLE_EVERY_MS / 1000} s while the console is open ` +
      '(the last 10 minutes). Delivery figures are those of the worker running in this process ' +
      '(serve --worker); a separate webhooks worker process exposes its own /metrics.'),
    h('section', { 'aria-label': 'Now' }, tiles),
    status,
    charts);

  const render = () => {
    const samples = sampler.samples;
    const last = samples[samples.length - 1];
    const points = derive(samples);
    const recent = points[points.length - 1];
    if (sampler.error) fill(status, `Sampling failed: ${describeError(sampler.error)}`);
    else if (points.length === 0) fill(status, 'Collecting samples…');
    else fill(status, `${samples.length} samples.`);
    status.dataset.samples = String(samples.length);

    const windowTotals = { succeeded: 0, failed: 0 };
    if (samples.length > 1) {
      for (const outcome of Object.keys(windowTotals)) {
        const a = sum(samples[0].series, 'webhooks_deliveries_total', { outcome });
        const b = sum(last.series, 'webhooks_deliveries_total', { outcome });
        windowTotals[outcome] = increase(a, b) || 0;
      }
    }
    const finished = windowTotals.succeeded + windowTotals.failed;
    const gauge = (name) => (last ? sum(last.series, name) : undefined);
    const tile = (label, value, note) =>
      h('div', { class: 'tile' },
        h('span', { class: 'tile-label' }, label),
        h('strong', { class: 'tile-value' }, value === undefined ? '—' : value),
        note ? h('span', { class: 'tile-note muted' }, note) : null);
    const reported = (v, fmt) => (v === undefined ? undefined : fmt(v));
    const notReported = 'not reported by this process';
    fill(tiles,
      tile('Deliveries now', recent ? perSecond(sumRates(recent.deliveries)) : undefined, 'finished per second'),
      tile('Success in window', finished ? `${((100 * windowTotals.succeeded) / finished).toFixed(1)} %` : undefined,
        `${windowTotals.succeeded} succeeded, ${windowTotals.failed} failed`),
      tile('Pending backlog', reported(gauge('webhooks_deliveries_pending'), count),
        gauge('webhooks_deliveries_pending') === undefined ? notReported : 'deliveries waiting for a retry'),
      tile('Circuits open', reported(gauge('webhooks_circuits_open'), count),
        gauge('webhooks_circuits_open') === undefined ? notReported : 'endpoints paused after failures'),
      tile('Auto-disabled', reported(gauge('webhooks_configs_auto_disabled_total'), count),
        gauge('webhooks_configs_auto_disabled_total') === undefined ? notReported : 'endpoints deactivated since start'));

    const now = Date.now();
    const line = (name, cls, pick) => ({ name, cls, points: points.map((p) => ({ t: p.t, v: pick(p) })) });
    fill(charts,
      lineChart({
        title: 'Deliveries finished per second', windowMs: WINDOW_MS, now, format: perSecond,
        series: [
          line('succeeded', 'ok', (p) => p.deliveries.succeeded),
          line('failed', 'bad', (p) => p.deliveries.failed),
          line('cancelled', 'muted', (p) => p.deliveries.cancelled),
        ],
      }),
      lineChart({
        title: 'Attempts per second by outcome', windowMs: WINDOW_MS, now, format: perSecond,
        series: [
          line('succeeded', 'ok', (p) => p.attempts.succeeded),
          line('retryable failure', 'warn', (p) => p.attempts.retryable_failure),
          line('permanent failure', 'bad', (p) => p.attempts.permanent_failure),
        ],
      }),
      lineChart({
        title: 'Pending backlog', windowMs: WINDOW_MS, now, format: count,
        series: [line('pending', 'accent', (p) => p.pending)],
      }),
      lineChart({
        title: 'Attempt latency', windowMs: WINDOW_MS, now, format: ms,
        series: [line('mean', 'accent', (p) => p.meanMs), line('p95', 'warn', (p) => p.p95Ms)],
      }));
  };
  render();
  return sampler.subscribe(render);
}

function sumRates(rates) {
  return Object.values(rates).reduce((a, v) => a + (v || 0), 0);
}
