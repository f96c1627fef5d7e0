// Prometheus text (spec §8.1) read from `GET /metrics`, sampled by the page, and turned into
// the series the overview draws. Counters become per-second rates between two samples.

import { operations } from './api.js';

/** Samples: {t (ms), series: Map(name → [{labels, value}])}. */
export function parse(text) {
  const series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    if (!series.has(m[1])) series.set(m[1], []);
    series.get(m[1]).push({ labels, value });
  }
  return series;
}

/** Sum of a metric's values whose labels match `where` (undefined when the metric is absent). */
export function sum(series, name, where = {}) {
  const items = series.get(name);
  if (!items) return undefined;
  let total = 0;
  for (const { labels, value } of items) {
    if (Object.entries(where).every(([k, v]) => labels[k] === v)) total += value;
  }
  return total;
}

/** Cumulative histogram buckets [{le, count}] sorted by le. */
export function buckets(series, name) {
  const items = series.get(`${name}_bucket`) || [];
  return items
    .map(({ labels, value }) => ({ le: labels.le === '+Inf' ? Infinity : Number(labels.le), count: value }))
    .sort((a, b) => a.le - b.le);
}

/** Increase of a counter between two samples. A series is exposed from its first increment
 *  on, so one missing before started from zero; a restart (decrease) counts from zero too. */
export function increase(before, after) {
  if (after === undefined) return undefined;
  const from = before === undefined ? 0 : before;
  return after >= from ? after - from : after;
}

/** The q-quantile of the observations between two samples, interpolated inside its bucket. */
export function quantile(q, before, after) {
  if (!after.length) return undefined;
  const counts = after.map((b, i) => ({ le: b.le, count: increase(before[i] ? before[i].count : 0, b.count) }));
  const total = counts[counts.length - 1].count;
  if (!total) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const { le, count } of counts) {
    if (count >= rank) {
      if (le === Infinity) return lower;
      const inBucket = count - below;
      return inBucket ? lower + ((le - lower) * (rank - below)) / inBucket : le;
    }
    lower = le;
    below = count;
  }
  return lower;
}

export const SAMPLE_EVERY_MS = 5000;
const KEEP = 120; // 10 minutes at one sample every 5 s

/** Samples `/metrics` while the tab is visible; keeps the last KEEP samples. */
export class Sampler {
  constructor() {
    this.samples = [];
    this.listeners = new Set();
    this.error = null;
    this.timer = null;
  }

  start() {
    const tick = async () => {
      this.timer = null;
      if (document.visibilityState === 'visible') await this.sample();
      this.timer = setTimeout(tick, SAMPLE_EVERY_MS);
    };
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.timer === null) tick();
    });
    tick();
  }

  async sample() {
    try {
      const text = await operations.metrics();
      this.samples.push({ t: Date.now(), series: parse(text) });
      if (this.samples.length > KEEP) this.samples.shift();
      this.error = null;
    } catch (e) {
      this.error = e;
    }
    for (const fn of this.listeners) fn();
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/**
 * The overview's series, one point per pair of consecutive samples:
 * {t, deliveries: {succeeded, failed, cancelled} per second, attempts: {succeeded,
 * retryable_failure, permanent_failure} per second, pending, meanMs, p95Ms}.
 */
export function derive(samples) {
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    const rate = (name, where) => {
      const inc = increase(sum(a.series, name, where), sum(b.series, name, where));
      return inc === undefined ? undefined : inc / dt;
    };
    const deliveries = {};
    for (const outcome of ['succeeded', 'failed', 'cancelled']) {
      deliveries[outcome] = rate('webhooks_deliveries_total', { outcome });
    }
    const attempts = {};
    for (const outcome of ['succeeded', 'retryable_failure', 'permanent_failure']) {
      attempts[outcome] = rate('webhooks_attempts_total', { outcome });
    }
    const h = 'webhooks_attempt_duration_seconds';
    const calls = increase(sum(a.series, `${h}_count`), sum(b.series, `${h}_count`));
    const seconds = increase(sum(a.series, `${h}_sum`), sum(b.series, `${h}_sum`));
    const p95 = quantile(0.95, buckets(a.series, h), buckets(b.series, h));
    points.push({
      t: b.t,
      deliveries,
      attempts,
      pending: sum(b.series, 'webhooks_deliveries_pending'),
      meanMs: calls ? (seconds / calls) * 1000 : undefined,
      p95Ms: p95 === undefined ? undefined : p95 * 1000,
    });
  }
  return points;
}
