// Endpoints (configs, spec §2.3–2.6): the list with each one's recent outcome, a page per
// endpoint with its actions, and the form to create or edit one.

import { configs, deliveries } from './api.js';
import { announce, badge, confirmDialog, copy, describeError, fill, h, message, pair, time } from './dom.js';

/** How many recent deliveries of an endpoint its success rate and last error come from. */
const RECENT = 20;
/** Recent-delivery pages loaded at once on the list. */
const PARALLEL = 4;

/**
 * What an endpoint's newest deliveries say: {total, succeeded, failed, pending, failing,
 * lastError: delivery|null}. `failing`: at least one was attempted and none succeeded.
 */
export function recentStats(items) {
  const count = (status) => items.filter((d) => d.status === status).length;
  const attempted = items.filter((d) => d.attemptCount > 0 || d.status === 'succeeded' || d.status === 'failed');
  const lastError = items.find((d) => d.status !== 'succeeded' &&
    (d.lastError || (d.lastStatusCode !== undefined && (d.lastStatusCode < 200 || d.lastStatusCode > 299))));
  return {
    total: items.length,
    succeeded: count('succeeded'),
    failed: count('failed'),
    pending: count('pending') + count('delivering'),
    failing: attempted.length > 0 && !attempted.some((d) => d.status === 'succeeded'),
    lastError: lastError || null,
  };
}

/** "HTTP 404", "timeout …", or the stored error. */
export function resultText(d) {
  if (d.lastError) return d.lastStatusCode ? `HTTP ${d.lastStatusCode}: ${d.lastError}` : d.lastError;
  if (d.lastStatusCode !== undefined) return d.lastStatusCode === 0 ? 'no response' : `HTTP ${d.lastStatusCode}`;
  return '';
}

/**
 * The state shown for a config. The API has active true/false only: a deactivated endpoint
 * whose recent calls all failed is shown as "deactivated (failing)" — what the worker's
 * auto-disable leaves behind, though a person may have deactivated it too.
 */
function state(config, stats) {
  if (config.active) return badge('active');
  if (stats && stats.failing) {
    return h('span', { title: 'Deactivated, and every recent call failed: possibly auto-disabled by the worker' },
      badge('failed', 'deactivated (failing)'));
  }
  return badge('deactivated');
}

function rate(stats) {
  if (stats.total === 0) return h('span', { class: 'muted' }, 'no deliveries yet');
  const finished = stats.succeeded + stats.failed;
  const pct = finished ? Math.round((100 * stats.succeeded) / finished) : null;
  return h('span', {},
    pct === null ? 'none finished' : `${pct} % succeeded`,
    h('span', { class: 'muted' }, ` (${stats.succeeded} of ${finished} finished` +
      (stats.pending ? `, ${stats.pending} pending` : '') + `; newest ${stats.total})`));
}

function lastErrorCell(stats) {
  if (!stats.lastError) return h('span', { class: 'muted' }, 'none');
  const d = stats.lastError;
  return h('span', {}, resultText(d), ' ', h('span', { class: 'muted' }, '(', time(d.lastAttemptAt || d.updatedAt), ')'));
}

function eventTypes(config) {
  return config.eventTypes.map((t, i) => [i ? ' ' : null, h('code', {}, t)]);
}

// ---- list -----------------------------------------------------------------------------------

export async function endpointList(main, ctx) {
  const body = h('div', {}, h('p', { class: 'muted loading' }, 'Loading…'));
  fill(main,
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Endpoints'),
      h('a', { href: '#/endpoints/new', class: 'button primary' }, 'New endpoint')),
    body);
  const list = await configs.list();
  if (!ctx.alive()) return undefined;
  if (list.length === 0) {
    fill(body, h('p', {}, 'No endpoint yet. ', h('a', { href: '#/endpoints/new' }, 'Create the first one'), '.'));
    return undefined;
  }
  const rows = list.map((c) => {
    const stateCell = h('td', {}, state(c));
    const rateCell = h('td', { class: 'muted' }, '…');
    const errorCell = h('td', { class: 'muted' }, '…');
    const row = h('tr', { dataset: { id: c.id } },
      h('th', { scope: 'row' }, h('a', { href: `#/endpoints/${encodeURIComponent(c.id)}` }, c.endpoint)),
      stateCell,
      h('td', {}, eventTypes(c)),
      rateCell,
      errorCell,
      h('td', {}, time(c.updatedAt)));
    row.load = async () => {
      try {
        const page = await deliveries.list({ configId: c.id, pageSize: RECENT });
        const stats = recentStats(page.data);
        fill(stateCell, state(c, stats));
        fill(rateCell, rate(stats));
        fill(errorCell, lastErrorCell(stats));
        rateCell.className = '';
        errorCell.className = '';
        row.dataset.loaded = 'true';
      } catch (e) {
        fill(rateCell, describeError(e));
        fill(errorCell, '');
      }
    };
    return row;
  });
  fill(body,
    h('table', {},
      h('caption', {}, `${list.length} endpoint${list.length === 1 ? '' : 's'}, recently updated first. ` +
        `Success rate and last error come from each endpoint's newest ${RECENT} deliveries.`),
      h('thead', {}, h('tr', {},
        ['Endpoint', 'State', 'Event types', 'Recent deliveries', 'Last error', 'Updated']
          .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
  announce(`${list.length} endpoints.`);

  // Recent deliveries are loaded only for rows on screen, a few at a time.
  const queue = [];
  let running = 0;
  const pump = () => {
    while (running < PARALLEL && queue.length && ctx.alive()) {
      const row = queue.shift();
      running++;
      row.load().finally(() => { running--; pump(); });
    }
  };
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        observer.unobserve(entry.target);
        queue.push(entry.target);
      }
    }
    pump();
  });
  rows.forEach((r) => observer.observe(r));
  return () => observer.disconnect();
}

// ---- create and edit ------------------------------------------------------------------------

/** The endpoint form; `config` given ⇒ edit. Resolves nothing; calls onSaved(config or id). */
function endpointForm({ config, onSaved, onCancel }) {
  const editing = !!config;
  const error = h('div');
  const endpoint = h('input', { id: 'ep-endpoint', name: 'endpoint', type: 'url', required: true, autocomplete: 'off', spellcheck: 'false', value: editing ? config.endpoint : '' });
  const types = h('input', { id: 'ep-types', name: 'eventTypes', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'ep-types-help', value: editing ? config.eventTypes.join(', ') : '' });
  const secret = h('input', { id: 'ep-secret', name: 'secret', type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'ep-secret-help' });
  const save = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save changes' : 'Create endpoint');
  const form = h('form', { class: 'stack', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'ep-endpoint' }, 'Endpoint URL'), endpoint),
    h('div', { class: 'field' }, h('label', { for: 'ep-types' }, 'Event types'), types,
      h('p', { id: 'ep-types-help', class: 'help' }, 'Separated by commas or spaces; ', h('code', {}, '*'), ' and ', h('code', {}, 'prefix.*'), ' match several.')),
    h('div', { class: 'field' }, h('label', { for: 'ep-secret' }, editing ? 'New secret (optional)' : 'Secret (optional)'), secret,
      h('p', { id: 'ep-secret-help', class: 'help' }, editing
        ? 'Leave empty to keep the current secret.'
        : 'Base64 of 24 bytes; leave empty and the server generates one.')),
    error,
    h('div', { class: 'actions' }, save, onCancel ? h('button', { type: 'button', onclick: onCancel }, 'Cancel') : null));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {
      endpoint: endpoint.value.trim(),
      eventTypes: types.value.split(/[\s,]+/).filter((t) => t !== ''),
    };
    if (secret.value.trim()) body.secret = secret.value.trim();
    save.disabled = true;
    fill(error);
    try {
      if (editing) {
        await configs.update(config.id, body);
        onSaved(config.id);
      } else {
        onSaved(await configs.insert(body));
      }
    } catch (err) {
      fill(error, message('error', describeError(err)));
      save.disabled = false;
    }
  });
  return form;
}

export function endpointNew(main, ctx) {
  fill(main,
    h('h1', { tabindex: '-1' }, 'New endpoint'),
    h('p', {}, 'Events whose type matches are signed and sent to this URL as they arrive.'),
    endpointForm({
      onSaved: (config) => {
        announce('Endpoint created.');
        ctx.navigate(`#/endpoints/${encodeURIComponent(config.id)}`);
      },
      onCancel: () => ctx.navigate('#/endpoints'),
    }));
}

// ---- one endpoint ---------------------------------------------------------------------------

export async function endpointDetail(main, ctx) {
  const id = ctx.params[0];
  const heading = h('h1', { tabindex: '-1' }, 'Endpoint');
  const content = h('div', {}, h('p', { class: 'muted loading' }, 'Loading…'));
  fill(main, heading, content);
  let config = await configs.get(id);
  if (!ctx.alive()) return;
  if (!config) {
    fill(content, message('error', 'No endpoint has this id (it may have been deleted).'),
      h('p', {}, h('a', { href: '#/endpoints' }, 'All endpoints')));
    return;
  }
  let revealed = false;
  const result = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });
  const recent = h('section', { 'aria-labelledby': 'recent-title' });
  const summary = h('div');
  const editArea = h('div');

  const say = (kind, text) => fill(result, message(kind, text));
  const run = async (button, work) => {
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      if (ctx.alive()) say('error', describeError(err));
    } finally {
      button.disabled = false;
    }
  };

  const secretCode = h('code', { id: 'secret-value', class: 'secret' });
  const revealButton = h('button', { type: 'button', id: 'secret-reveal', 'aria-controls': 'secret-value', 'aria-pressed': 'false' }, 'Reveal');
  const copyButton = h('button', { type: 'button', id: 'secret-copy' }, 'Copy');
  const showSecret = () => {
    fill(secretCode, revealed ? config.secret : '•'.repeat(12));
    secretCode.setAttribute('aria-label', revealed ? `Secret ${config.secret}` : 'Secret hidden');
    revealButton.textContent = revealed ? 'Hide' : 'Reveal';
    revealButton.setAttribute('aria-pressed', String(revealed));
  };
  revealButton.addEventListener('click', () => { revealed = !revealed; showSecret(); });
  copyButton.addEventListener('click', async () => {
    revealed = true;
    showSecret();
    say('ok', await copy(config.secret, secretCode));
  });

  const toggle = h('button', { type: 'button', id: 'toggle-active' });
  toggle.addEventListener('click', () => run(toggle, async () => {
    config = config.active ? await configs.deactivate(config.id) : await configs.activate(config.id);
    render();
    say('ok', config.active ? 'Endpoint activated: new events match it again.' : 'Endpoint deactivated: new events no longer match it; its pending deliveries wait.');
  }));

  const rotate = h('button', { type: 'button', id: 'rotate-secret' }, 'Rotate secret');
  rotate.addEventListener('click', () => run(rotate, async () => {
    const ok = await confirmDialog('Rotate the secret?',
      `The server generates a new secret for ${config.endpoint}; attempts from now on are signed with it, ` +
      'so the receiver must be given the new one.', 'Rotate secret');
    if (!ok) return;
    config = await configs.rotateSecret(config.id);
    revealed = false;
    render();
    say('ok', 'Secret rotated. Reveal or copy it to give it to the receiver.');
  }));

  const test = h('button', { type: 'button', id: 'send-test' }, 'Send test request');
  test.addEventListener('click', () => run(test, async () => {
    say('ok', 'Sending a test request…');
    const t = await configs.test(config.id);
    const answer = t.statusCode === 0 ? 'no HTTP response' : `HTTP ${t.statusCode}`;
    say(t.status === 'success' ? 'ok' : 'error',
      `Test request ${t.status === 'success' ? 'succeeded' : 'failed'}: ${answer} (formance-webhook-id ${t.webhookID}).`);
  }));

  const edit = h('button', { type: 'button', id: 'edit-endpoint', 'aria-expanded': 'false', 'aria-controls': 'edit-area' }, 'Edit');
  editArea.id = 'edit-area';
  const closeEdit = () => { fill(editArea); edit.setAttribute('aria-expanded', 'false'); edit.focus(); };
  edit.addEventListener('click', () => {
    if (edit.getAttribute('aria-expanded') === 'true') { closeEdit(); return; }
    edit.setAttribute('aria-expanded', 'true');
    fill(editArea, h('h2', {}, 'Edit endpoint'), endpointForm({
      config,
      onSaved: async () => {
        config = (await configs.get(config.id)) || config;
        closeEdit();
        render();
        say('ok', 'Endpoint saved.');
      },
      onCancel: closeEdit,
    }));
    editArea.querySelector('input').focus();
  });

  const remove = h('button', { type: 'button', id: 'delete-endpoint', class: 'danger' }, 'Delete');
  remove.addEventListener('click', () => run(remove, async () => {
    const ok = await confirmDialog('Delete this endpoint?',
      `${config.endpoint} stops receiving events and its pending deliveries are cancelled. ` +
      'Its delivery history stays under Deliveries.', 'Delete endpoint');
    if (!ok) return;
    await configs.remove(config.id);
    announce('Endpoint deleted.');
    ctx.navigate('#/endpoints');
  }));

  const render = (stats) => {
    fill(heading, 'Endpoint ', h('span', { class: 'sub' }, config.endpoint));
    toggle.textContent = config.active ? 'Deactivate' : 'Activate';
    showSecret();
    fill(summary, h('dl', { class: 'summary' },
      pair('State', state(config, stats), { id: 'endpoint-state' }),
      pair('Event types', eventTypes(config)),
      pair('Secret', [secretCode, ' ', revealButton, ' ', copyButton], { class: 'secret-row' }),
      pair('ID', h('code', {}, config.id)),
      pair('Created', time(config.createdAt)),
      pair('Updated', time(config.updatedAt))));
  };

  fill(content,
    summary,
    h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Endpoint actions' },
      edit, toggle, rotate, test,
      h('a', { class: 'button', href: `#/deliveries?configId=${encodeURIComponent(config.id)}` }, 'View deliveries'),
      remove),
    result,
    editArea,
    recent);
  render();

  fill(recent, h('h2', { id: 'recent-title' }, `Newest ${RECENT} deliveries`), h('p', { class: 'muted loading' }, 'Loading…'));
  const page = await deliveries.list({ configId: config.id, pageSize: RECENT });
  if (!ctx.alive()) return;
  const stats = recentStats(page.data);
  render(stats);
  fill(recent,
    h('h2', { id: 'recent-title' }, `Newest ${RECENT} deliveries`),
    h('p', {}, rate(stats), '. Last error: ', lastErrorCell(stats), '.'),
    page.data.length ? h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Newest deliveries of this endpoint'),
      h('thead', {}, h('tr', {}, ['Created', 'Status', 'Event type', 'Attempts', 'Last result'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.data.map((d) => h('tr', {},
        h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}`, 'aria-label': `Delivery ${d.id}` }, time(d.createdAt))),
        h('td', {}, badge(d.status)),
        h('td', {}, h('code', {}, d.eventType)),
        h('td', { class: 'num' }, d.attemptCount),
        h('td', {}, resultText(d)))))) : null);
}
