// The console's entry point: hash routes (#/overview, #/endpoints…, #/deliveries…), the API
// key dialog, and the metrics sampler shared by the pages.

import { AuthRequired, apiKey, call, operations, setApiKey, setAuthHandler } from './api.js';
import { deliveryDetail, deliveryList } from './deliveries.js';
import { announce, describeError, fill, h, message } from './dom.js';
import { endpointDetail, endpointList, endpointNew } from './endpoints.js';
import { Sampler } from './metrics.js';
import { overview } from './overview.js';

const ROUTES = [
  [/^\/overview$/, 'overview', 'Overview', overview],
  [/^\/endpoints$/, 'endpoints', 'Endpoints', endpointList],
  [/^\/endpoints\/new$/, 'endpoints', 'New endpoint', endpointNew],
  [/^\/endpoints\/([^/]+)$/, 'endpoints', 'Endpoint', endpointDetail],
  [/^\/deliveries$/, 'deliveries', 'Deliveries', deliveryList],
  [/^\/deliveries\/([^/]+)$/, 'deliveries', 'Delivery', deliveryDetail],
];
const DEFAULT = '#/deliveries';

const main = document.getElementById('main');
const sampler = new Sampler();
let cleanups = [];
let generation = 0;

/** Renders the page the hash names. */
async function route({ focus = true } = {}) {
  const hash = location.hash;
  if (!hash.startsWith('#/')) {
    location.replace(DEFAULT);
    return;
  }
  for (const fn of cleanups.splice(0)) fn();
  const gen = ++generation;
  const [path, query = ''] = hash.slice(1).split('?');
  const found = ROUTES.map(([re, nav, title, view]) => ({ m: re.exec(path), nav, title, view })).find((r) => r.m);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (found && a.dataset.nav === found.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!found) {
    fill(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'This page does not exist. ', h('a', { href: DEFAULT }, 'Go to deliveries')));
    main.querySelector('h1').focus();
    return;
  }
  document.title = `${found.title} · webhooks console`;
  const ctx = {
    sampler,
    params: found.m.slice(1).map(decodeURIComponent),
    query: new URLSearchParams(query),
    alive: () => gen === generation,
    onCleanup: (fn) => cleanups.push(fn),
    failure,
    navigate: (to) => { location.hash = to; },
  };
  const pending = found.view(main, ctx);
  // Each page puts its heading first, synchronously: move focus there for screen readers.
  const heading = main.querySelector('h1');
  if (focus && heading) heading.focus();
  const cleanup = await Promise.resolve(pending).catch((e) => {
    if (!ctx.alive()) return;
    for (const el of main.querySelectorAll('.loading')) el.remove();
    main.append(failure(e));
  });
  if (typeof cleanup === 'function') {
    if (ctx.alive()) cleanups.push(cleanup);
    else cleanup();
  }
}

/** What a page shows when a call failed; a 401 offers to enter a key. */
function failure(err) {
  if (err instanceof AuthRequired) {
    return h('div', { class: 'message error', role: 'alert' },
      h('p', {}, `This page needs an API key: the server answered ${describeError(err)}`),
      h('button', { type: 'button', onclick: () => askForKey() }, 'Enter API key'));
  }
  return message('error', describeError(err));
}

// ---- API key ------------------------------------------------------------------------------

const dialog = document.getElementById('key-dialog');
const form = document.getElementById('key-form');
const input = document.getElementById('key-input');
const keyError = document.getElementById('key-error');
const enterButton = document.getElementById('key-enter');
const forgetButton = document.getElementById('key-forget');
let needsKey = false;

function showKeyState() {
  forgetButton.hidden = !apiKey();
  enterButton.hidden = !needsKey || !!apiKey();
}

function askForKey(refused) {
  needsKey = true;
  showKeyState();
  if (dialog.open) return;
  keyError.hidden = !refused;
  if (refused) keyError.textContent = refused;
  input.value = '';
  dialog.showModal();
  input.focus();
}

setAuthHandler(() => {
  // The stored key, if any, is no longer accepted.
  const stale = apiKey();
  setApiKey('');
  askForKey(stale ? 'The server no longer accepts the key this tab used. Enter a valid one.' : '');
});

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const candidate = input.value.trim();
  if (!candidate) {
    keyError.textContent = 'Enter a key.';
    keyError.hidden = false;
    input.focus();
    return;
  }
  const submit = document.getElementById('key-submit');
  submit.disabled = true;
  try {
    await call('GET', '/configs', { key: candidate });
  } catch (err) {
    // 403: the key is valid but lacks a scope; it still serves what it may.
    if (err.status !== 403) {
      keyError.textContent = err instanceof AuthRequired
        ? `The server refused this key (${describeError(err)}). Check it and try again.`
        : `The key could not be checked: ${describeError(err)}`;
      keyError.hidden = false;
      submit.disabled = false;
      input.select();
      input.focus();
      return;
    }
  }
  submit.disabled = false;
  setApiKey(candidate);
  needsKey = false;
  dialog.close();
  showKeyState();
  announce('API key accepted.');
  route();
});

document.getElementById('key-cancel').addEventListener('click', () => dialog.close());
enterButton.addEventListener('click', () => askForKey());
forgetButton.addEventListener('click', () => {
  setApiKey('');
  showKeyState();
  announce('API key forgotten.');
  route();
});

// ---- start ----------------------------------------------------------------------------------

document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => route());
showKeyState();
operations.info().then((info) => {
  document.getElementById('version').textContent = info.version;
}).catch(() => {});
sampler.start();
route({ focus: false });
