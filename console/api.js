// The console's only way to the server: the public API (spec §2.2), exactly as any client.
// The API lives one level above this file (`…/console/api.js` ⇒ `…/`), so a gateway may
// mount everything under a prefix.

const BASE = new URL('../', import.meta.url);
const KEY = 'webhooks.console.apiKey';

/** A refused or failed API call; `status`/`code` are set when the server answered. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** 401: the server wants a (different) credential. */
export class AuthRequired extends ApiError {}

let onAuthRequired = () => {};

/** Called on every 401 (the app asks for a key). */
export function setAuthHandler(fn) {
  onAuthRequired = fn;
}

/** The API key of this tab, if one was entered. Session storage only: gone with the tab. */
export function apiKey() {
  return sessionStorage.getItem(KEY) || '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** The URL of an API path with its query (empty values left out). */
export function url(path, query) {
  const u = new URL(path.replace(/^\//, ''), BASE);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

/**
 * One API call. Resolves with the parsed JSON body (null when empty); rejects with ApiError.
 * options: query, json (a body sent as application/json), idempotencyKey, key (use this
 * credential instead of the stored one, to try it), text (resolve with the raw text).
 */
export async function call(method, path, options = {}) {
  const headers = {};
  const key = options.key !== undefined ? options.key : apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  let res;
  try {
    res = await fetch(url(path, options.query), { method, headers, body, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, '', `the server could not be reached (${e.message})`);
  }
  const text = await res.text();
  if (res.ok) {
    if (options.text) return text;
    return text.trim() === '' ? null : JSON.parse(text);
  }
  let code = '';
  let msg = res.statusText || 'request failed';
  try {
    const err = JSON.parse(text);
    code = err.errorCode || '';
    msg = err.errorMessage || msg;
  } catch {
    // Not the API's error shape (a proxy in between?): keep the status text.
  }
  if (res.status === 401) {
    const err = new AuthRequired(401, code || 'UNAUTHORIZED', msg);
    if (options.key === undefined) onAuthRequired(err);
    throw err;
  }
  throw new ApiError(res.status, code, msg);
}

// ---- The routes the console uses, one function each (all documented in openapi.yaml) ------

export const configs = {
  list: (query) => call('GET', '/configs', { query }).then((r) => r.cursor.data),
  get: (id) => configs.list({ id }).then((list) => list[0] || null),
  insert: (body) => call('POST', '/configs', { json: body }).then((r) => r.data),
  update: (id, body) => call('PUT', `/configs/${encodeURIComponent(id)}`, { json: body }),
  remove: (id) => call('DELETE', `/configs/${encodeURIComponent(id)}`),
  activate: (id) => call('PUT', `/configs/${encodeURIComponent(id)}/activate`).then((r) => r.data),
  deactivate: (id) => call('PUT', `/configs/${encodeURIComponent(id)}/deactivate`).then((r) => r.data),
  // No body: the server generates the new secret.
  rotateSecret: (id) => call('PUT', `/configs/${encodeURIComponent(id)}/secret/change`).then((r) => r.data),
  test: (id) => call('GET', `/configs/${encodeURIComponent(id)}/test`).then((r) => r.data),
};

export const deliveries = {
  /** One page: {data, hasMore, next}. */
  list: (query) => call('GET', '/deliveries', { query }).then((r) => r.cursor),
  get: (id) => call('GET', `/deliveries/${encodeURIComponent(id)}`).then((r) => r.data),
  attempts: (id, query) => call('GET', `/deliveries/${encodeURIComponent(id)}/attempts`, { query }).then((r) => r.cursor),
  replay: (id, idempotencyKey) =>
    call('POST', `/deliveries/${encodeURIComponent(id)}/replay`, { idempotencyKey }).then((r) => r.data),
  replayPage: (body, idempotencyKey) =>
    call('POST', '/deliveries/replay', { json: body, idempotencyKey }).then((r) => r.data),
};

export const operations = {
  info: () => call('GET', '/_info'),
  metrics: () => call('GET', '/metrics', { text: true }),
};
