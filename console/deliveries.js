// Deliveries (spec §2.7): the filtered list, newest first, one keyset page at a time; one
// delivery with the body it sent, its signed headers and its attempts; single and bulk replay.

import { configs, deliveries } from './api.js';
import { announce, badge, confirmDialog, copy, describeError, fill, h, localInputValue, localTime, message, pair, time, uuid } from './dom.js';
import { resultText } from './endpoints.js';

const PAGE = 50;
/** Deliveries per bulk replay request: progress shows after each page. */
export const BULK_PAGE = 50;
const REFRESH_MS = 3000;
const STATUSES = ['pending', 'delivering', 'succeeded', 'failed', 'cancelled'];
const WINDOWS = [
  ['', 'Choose…'],
  ['all', 'Any time'],
  ['15m', 'Last 15 minutes', 15 * 60e3],
  ['1h', 'Last hour', 60 * 60e3],
  ['24h', 'Last 24 hours', 24 * 60 * 60e3],
  ['7d', 'Last 7 days', 7 * 24 * 60 * 60e3],
];
const FILTERS = ['configId', 'status', 'createdAtFrom', 'createdAtTo'];

/** Cursors of the pages before the current one, per filter set (for "Newer"). */
const trails = new Map();

function hashFor(filters, cursor) {
  const q = new URLSearchParams();
  for (const k of FILTERS) if (filters[k]) q.set(k, filters[k]);
  if (cursor) q.set('cursor', cursor);
  const s = q.toString();
  return `#/deliveries${s ? `?${s}` : ''}`;
}

function shortId(id) {
  return `${id.slice(0, 8)}…`;
}

/** endpoint URL by config id (deleted configs are not listed by the API). */
async function endpointsById() {
  const list = await configs.list();
  return new Map(list.map((c) => [c.id, c]));
}

function endpointText(byId, configId) {
  const c = byId.get(configId);
  return c ? c.endpoint : `${shortId(configId)} (deleted)`;
}

// ---- list -----------------------------------------------------------------------------------

export async function deliveryList(main, ctx) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, ctx.query.get(k) || '']));
  const cursor = ctx.query.get('cursor') || '';
  const filterKey = JSON.stringify(filters);
  if (!trails.has(filterKey)) trails.set(filterKey, []);
  const trail = trails.get(filterKey);
  if (!cursor) trail.length = 0;

  const results = h('div', { id: 'delivery-results' }, h('p', { class: 'muted loading' }, 'Loading…'));
  const bulk = h('section', { 'aria-labelledby': 'bulk-title', class: 'bulk' });
  const filterForm = h('form', { role: 'search', 'aria-label': 'Filter deliveries', class: 'filters', novalidate: true });
  fill(main,
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Deliveries'), findById(ctx)),
    filterForm,
    bulk,
    results);

  const byId = await endpointsById();
  if (!ctx.alive()) return undefined;
  buildFilters(filterForm, filters, byId, ctx);
  buildBulk(bulk, filters, byId);

  const query = { ...filters, cursor, pageSize: PAGE };
  let shown = '';
  let timer = null;
  const auto = h('input', { type: 'checkbox', id: 'auto-refresh', checked: !cursor, disabled: !!cursor });
  const load = async () => {
    const page = await deliveries.list(query);
    if (!ctx.alive()) return;
    const key = JSON.stringify(page);
    if (key === shown) return;
    shown = key;
    // Keep keyboard focus on the same row across a refresh.
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.delivery : undefined;
    renderPage(results, page, { byId, filters, cursor, trail, ctx, auto });
    if (focused) {
      const again = results.querySelector(`[data-delivery="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  };
  const tick = async () => {
    timer = null;
    if (auto.checked && document.visibilityState === 'visible') {
      try { await load(); } catch { /* shown on the next manual load */ }
    }
    if (ctx.alive()) timer = setTimeout(tick, REFRESH_MS);
  };
  await load();
  announce(`${results.querySelectorAll('tbody tr').length} deliveries shown.`);
  timer = setTimeout(tick, REFRESH_MS);
  return () => { if (timer) clearTimeout(timer); };
}

function findById(ctx) {
  const input = h('input', { id: 'find-id', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'delivery id' });
  const form = h('form', { class: 'inline', role: 'search', 'aria-label': 'Open a delivery by id', novalidate: true },
    h('label', { for: 'find-id' }, 'Delivery id'), input, h('button', { type: 'submit' }, 'Open'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = input.value.trim();
    if (id) ctx.navigate(`#/deliveries/${encodeURIComponent(id)}`);
  });
  return form;
}

function select(id, options, value) {
  const el = h('select', { id, name: id },
    options.map(([v, label]) => h('option', { value: v }, label)));
  el.value = value;
  return el;
}

function buildFilters(form, filters, byId, ctx) {
  const endpoint = select('f-config', [['', 'All endpoints'], ...[...byId.values()].map((c) => [c.id, c.endpoint])], filters.configId);
  if (filters.configId && !byId.has(filters.configId)) {
    endpoint.append(h('option', { value: filters.configId }, `${shortId(filters.configId)} (deleted)`));
    endpoint.value = filters.configId;
  }
  const status = select('f-status', [['', 'Any status'], ...STATUSES.map((st) => [st, st])], filters.status);
  const windowSelect = select('f-window', WINDOWS.map(([v, l]) => [v, l]), '');
  const from = h('input', { id: 'f-from', type: 'datetime-local', step: '1', value: filters.createdAtFrom ? localInputValue(new Date(filters.createdAtFrom)) : '' });
  const to = h('input', { id: 'f-to', type: 'datetime-local', step: '1', value: filters.createdAtTo ? localInputValue(new Date(filters.createdAtTo)) : '' });
  // A preset fills the two fields below, which are what "Apply" uses.
  windowSelect.addEventListener('change', () => {
    const w = WINDOWS.find(([v]) => v === windowSelect.value);
    if (!w || !w[0]) return;
    from.value = w[2] ? localInputValue(new Date(Date.now() - w[2])) : '';
    to.value = '';
  });
  const field = (label, control) => h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
  fill(form,
    field('Endpoint', endpoint),
    field('Status', status),
    field('Quick window', windowSelect),
    field('Created from', from),
    field('Created to', to),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'f-apply' }, 'Apply'),
      h('a', { class: 'button', href: '#/deliveries' }, 'Reset')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const iso = (v) => (v ? new Date(v).toISOString() : '');
    ctx.navigate(hashFor({
      configId: endpoint.value,
      status: status.value,
      createdAtFrom: iso(from.value),
      createdAtTo: iso(to.value),
    }, ''));
  });
}

function renderPage(results, page, { byId, filters, cursor, trail, ctx, auto }) {
  const filtered = FILTERS.some((k) => filters[k]);
  const newer = h('button', { type: 'button', id: 'page-newer', disabled: !cursor }, '← Newer');
  newer.addEventListener('click', () => {
    const previous = trail.pop();
    ctx.navigate(hashFor(filters, previous || ''));
  });
  const older = h('button', { type: 'button', id: 'page-older', disabled: !page.hasMore }, 'Older →');
  older.addEventListener('click', () => {
    trail.push(cursor);
    ctx.navigate(hashFor(filters, page.next));
  });
  const paging = h('nav', { class: 'paging', 'aria-label': 'Pages' },
    newer, older,
    cursor ? h('a', { class: 'button', href: hashFor(filters, '') }, 'Newest') : null,
    h('label', { class: 'check' }, auto, ` Refresh every ${REFRESH_MS / 1000} s`));
  if (page.data.length === 0) {
    fill(results, message('ok', filtered ? 'No delivery matches these filters.' : 'No delivery yet: they appear here as events are delivered.'), paging);
    return;
  }
  fill(results,
    h('table', { class: 'deliveries' },
      h('caption', {}, `Deliveries, newest first: ${page.data.length} on this page${page.hasMore ? ', more older ones' : ''}.`),
      h('thead', {}, h('tr', {}, ['Delivery', 'Created', 'Status', 'Event type', 'Endpoint', 'Attempts', 'Last result']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.data.map((d) => h('tr', { dataset: { status: d.status } },
        h('th', { scope: 'row' }, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}`, dataset: { delivery: d.id }, 'aria-label': `Delivery ${d.id}` }, h('code', {}, shortId(d.id)))),
        h('td', {}, time(d.createdAt)),
        h('td', {}, badge(d.status)),
        h('td', {}, h('code', {}, d.eventType)),
        h('td', { class: 'wrap' }, endpointText(byId, d.configID)),
        h('td', { class: 'num' }, d.attemptCount),
        h('td', { class: 'wrap' }, resultText(d)))))),
    paging);
}

// ---- bulk replay ----------------------------------------------------------------------------

function buildBulk(section, filters, byId) {
  const title = h('h2', { id: 'bulk-title' }, 'Replay failed deliveries');
  if (!filters.createdAtFrom) {
    fill(section, title, h('p', { class: 'muted' },
      'Choose a time window (at least “Created from”) and apply it to replay every failed delivery in it; ' +
      'the API replays windows of up to 90 days.'));
    return;
  }
  const scope = `created from ${localTime(new Date(filters.createdAtFrom))}` +
    (filters.createdAtTo ? ` to ${localTime(new Date(filters.createdAtTo))}` : ' until now') +
    (filters.configId ? ` for ${endpointText(byId, filters.configId)}` : ' for every endpoint');
  const start = h('button', { type: 'button', id: 'bulk-replay', class: 'primary' }, 'Replay failed in this window');
  const stop = h('button', { type: 'button', id: 'bulk-stop', hidden: true }, 'Stop');
  const progress = h('progress', { id: 'bulk-bar', hidden: true, 'aria-labelledby': 'bulk-title' });
  const status = h('p', { id: 'bulk-status', role: 'status', 'aria-live': 'polite' });
  let stopping = false;
  stop.addEventListener('click', () => { stopping = true; stop.disabled = true; });
  start.addEventListener('click', async () => {
    const ok = await confirmDialog('Replay failed deliveries?',
      `Every failed delivery ${scope} is sent again (deliveries of deactivated or deleted endpoints are left alone).`,
      'Replay');
    if (!ok) return;
    stopping = false;
    start.disabled = true;
    stop.hidden = false;
    stop.disabled = false;
    progress.hidden = false;
    progress.removeAttribute('value');
    const body = { createdAtFrom: filters.createdAtFrom, statuses: ['failed'], pageSize: BULK_PAGE };
    if (filters.createdAtTo) body.createdAtTo = filters.createdAtTo;
    if (filters.configId) body.configIds = [filters.configId];
    const totals = { replayed: 0, expedited: 0, skipped: 0 };
    let pages = 0;
    let next = '';
    const said = () => `${totals.replayed} replayed, ${totals.skipped} skipped in ${pages} page${pages === 1 ? '' : 's'}`;
    try {
      for (;;) {
        // A new key per page: each page is its own request (a retried page would reuse it).
        const r = await deliveries.replayPage(next ? { ...body, cursor: next } : body, uuid());
        pages++;
        for (const k of Object.keys(totals)) totals[k] += r[k];
        status.textContent = `Page ${pages}: ${said()} so far…`;
        if (!r.hasMore) { status.textContent = `Done: ${said()}.`; break; }
        if (stopping) { status.textContent = `Stopped: ${said()}. Run it again to go on.`; break; }
        next = r.nextCursor;
      }
    } catch (err) {
      status.textContent = `Stopped by an error after ${said()}: ${describeError(err)}`;
    }
    progress.value = 1;
    progress.max = 1;
    start.disabled = false;
    stop.hidden = true;
    section.dataset.done = 'true';
  });
  fill(section, title,
    h('p', {}, `Sends again every failed delivery ${scope}, ${BULK_PAGE} per request, with progress.`),
    h('div', { class: 'actions' }, start, stop), progress, status);
}

// ---- one delivery ---------------------------------------------------------------------------

const POLL_MS = 1500;

export async function deliveryDetail(main, ctx) {
  const id = ctx.params[0];
  const content = h('div', {}, h('p', { class: 'muted loading' }, 'Loading…'));
  fill(main, h('h1', { tabindex: '-1' }, 'Delivery ', h('span', { class: 'sub' }, h('code', {}, id))), content);
  let delivery;
  try {
    delivery = await deliveries.get(id);
  } catch (err) {
    if (err.status === 404) {
      fill(content, message('error', 'No delivery has this id.'), h('p', {}, h('a', { href: '#/deliveries' }, 'All deliveries')));
      return undefined;
    }
    throw err;
  }
  const byId = await endpointsById();
  if (!ctx.alive()) return undefined;

  const summary = h('div');
  const result = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });
  const timeline = h('section', { 'aria-labelledby': 'attempts-title' });
  const replay = h('button', { type: 'button', id: 'replay', class: 'primary' });
  let timer = null;

  const renderSummary = () => {
    const config = byId.get(delivery.configID);
    replay.textContent = delivery.status === 'pending' ? 'Send now' : 'Replay';
    replay.disabled = !['failed', 'pending'].includes(delivery.status);
    const row = (label, value, id) => pair(label, value, id ? { id } : {});
    fill(summary, h('dl', { class: 'summary' },
      row('Status', badge(delivery.status), 'delivery-status'),
      row('Endpoint', config ? h('a', { href: `#/endpoints/${encodeURIComponent(config.id)}` }, config.endpoint) : `${delivery.configID} (deleted)`),
      row('Event type', h('code', {}, delivery.eventType)),
      row('Event id', h('code', {}, delivery.eventID)),
      delivery.idempotencyKey ? row('Idempotency key', h('code', {}, delivery.idempotencyKey)) : null,
      row('Attempts', `${delivery.attemptCount} in this cycle (replay generation ${delivery.replayGeneration})`),
      row('Last result', resultText(delivery) || '—'),
      row('Created', time(delivery.createdAt)),
      row('Last attempt', time(delivery.lastAttemptAt)),
      row('Next attempt', time(delivery.nextAttemptAt)),
      row('Updated', time(delivery.updatedAt))));
  };

  const loadAttempts = async () => {
    const page = await deliveries.attempts(delivery.id, { pageSize: 100 });
    if (!ctx.alive()) return;
    renderTimeline(timeline, delivery, page);
  };

  const poll = async () => {
    timer = null;
    const before = delivery.status;
    try {
      delivery = await deliveries.get(delivery.id);
      if (!ctx.alive()) return;
      renderSummary();
      await loadAttempts();
      if (delivery.status !== before) announce(`Delivery ${delivery.status}.`);
    } catch (err) {
      if (ctx.alive()) fill(result, message('error', describeError(err)));
    }
    if (ctx.alive() && ['pending', 'delivering'].includes(delivery.status)) timer = setTimeout(poll, POLL_MS);
  };

  replay.addEventListener('click', async () => {
    replay.disabled = true;
    try {
      const wasPending = delivery.status === 'pending';
      delivery = await deliveries.replay(delivery.id, uuid());
      renderSummary();
      fill(result, message('ok', wasPending
        ? 'Sent for an attempt now.'
        : `Replay requested: a new cycle of attempts started (replay generation ${delivery.replayGeneration}).`));
      if (!timer) timer = setTimeout(poll, POLL_MS);
    } catch (err) {
      fill(result, message('error', describeError(err)));
      renderSummary();
    }
  });

  fill(content,
    summary,
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Delivery actions' }, replay,
      h('a', { class: 'button', href: `#/deliveries?configId=${encodeURIComponent(delivery.configID)}` }, 'Deliveries of this endpoint')),
    result,
    bodySection(delivery),
    headersSection(delivery),
    timeline);
  renderSummary();
  await loadAttempts();
  if (['pending', 'delivering'].includes(delivery.status)) timer = setTimeout(poll, POLL_MS);
  return () => { if (timer) clearTimeout(timer); };
}

function bodySection(delivery) {
  const exact = delivery.payload || '';
  let pretty = null;
  try { pretty = JSON.stringify(JSON.parse(exact), null, 2); } catch { /* not JSON: exact only */ }
  const pre = h('pre', { id: 'payload', class: 'code', tabindex: '0', 'aria-labelledby': 'body-title' }, exact);
  let showPretty = false;
  const toggle = h('button', { type: 'button', 'aria-pressed': 'false', disabled: pretty === null }, 'Formatted');
  toggle.addEventListener('click', () => {
    showPretty = !showPretty;
    pre.textContent = showPretty ? pretty : exact;
    toggle.setAttribute('aria-pressed', String(showPretty));
  });
  const note = h('p', { class: 'help', role: 'status' });
  const copyButton = h('button', { type: 'button' }, 'Copy');
  copyButton.addEventListener('click', async () => { note.textContent = await copy(exact, pre); });
  return h('section', { 'aria-labelledby': 'body-title' },
    h('h2', { id: 'body-title' }, 'Body sent'),
    h('p', { class: 'help' }, `The exact bytes POSTed to the endpoint (${new TextEncoder().encode(exact).length} bytes), the same for every attempt.`),
    h('div', { class: 'actions' }, toggle, copyButton), note, pre);
}

function headersSection(delivery) {
  const rows = [
    ['content-type', 'application/json'],
    ['user-agent', 'formance-webhooks/v0'],
    ['formance-webhook-id', h('code', {}, delivery.id)],
    ['formance-webhook-timestamp', h('span', { class: 'muted' }, 'Unix seconds at the start of each attempt (not stored)')],
    ['formance-webhook-signature', h('span', { class: 'muted' }, 'v1,base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body)) — differs per attempt (not stored)')],
    ['formance-webhook-test', 'false'],
  ];
  if (delivery.idempotencyKey) rows.push(['formance-webhook-idempotency-key', h('code', {}, delivery.idempotencyKey)]);
  return h('section', { 'aria-labelledby': 'headers-title' },
    h('h2', { id: 'headers-title' }, 'Signed headers'),
    h('p', { class: 'help' },
      'Each attempt signs the delivery id, that attempt\'s timestamp and the body with the endpoint\'s secret. ' +
      'The server does not store the timestamp or the signature of past attempts, so they are shown as their formula. ' +
      'With --signature-headers=standard the id, timestamp and signature are sent as webhook-id, webhook-timestamp and ' +
      'webhook-signature instead (both: both sets); during a secret overlap the signature header carries one signature per secret.'),
    h('table', { class: 'headers' },
      h('caption', { class: 'visually-hidden' }, 'Headers of each attempt'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Header'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, rows.map(([name, value]) => h('tr', {}, h('th', { scope: 'row' }, h('code', {}, name)), h('td', {}, value))))));
}

function renderTimeline(section, delivery, page) {
  const items = page.data.map((a) => h('li', { class: `attempt ${a.outcome}`, dataset: { outcome: a.outcome } },
    h('div', { class: 'attempt-head' },
      badge(a.outcome),
      h('strong', {}, ` Attempt ${a.attemptNumber}`),
      h('span', { class: 'muted' }, ` · generation ${a.replayGeneration} · `),
      time(a.createdAt)),
    h('dl', { class: 'attempt-facts' },
      pair('Answer', a.statusCode === 0 ? 'no HTTP response' : `HTTP ${a.statusCode}`),
      pair('Duration', a.durationMillis === undefined ? '—' : `${a.durationMillis} ms`),
      pair('Endpoint', a.endpoint, { class: 'wrap' }),
      a.error ? pair('Error', a.error) : null),
    a.responseExcerpt ? h('details', {}, h('summary', {}, 'Response excerpt'), h('pre', { class: 'code' }, a.responseExcerpt)) : null));
  fill(section,
    h('h2', { id: 'attempts-title' }, `Attempts (${page.data.length}${page.hasMore ? '+' : ''})`),
    items.length
      ? h('ol', { class: 'timeline', 'aria-label': 'Attempts, newest first' }, items)
      : h('p', { class: 'muted' }, delivery.status === 'pending' ? 'No attempt yet in this cycle: the next one is due soon.' : 'No attempt recorded.'),
    page.hasMore ? h('p', { class: 'muted' }, 'The 100 newest attempts are shown.') : null);
}
