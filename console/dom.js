// DOM helpers. Everything the console shows is built with createElement and text nodes: data
// from the API is never parsed as HTML, so it needs no escaping and cannot inject markup.

/** An element: h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child, [more]). */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element, same calling convention as h(). */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG, tag), props, children);
}

function build(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' || key === 'checked' || key === 'selected') {
      el[key] = value;
    } else if (key === 'href' && !String(value).startsWith('#')) {
      throw new Error('only in-page links are built');
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Says something to screen readers (and keeps it visible to nobody else). */
export function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  // A change after a tick is announced even when the text repeats.
  setTimeout(() => { live.textContent = text; }, 50);
}

/** A visible message that is also announced: kind 'error' (alert) or 'ok' (status). */
export function message(kind, text) {
  return h('p', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** The text of an API failure: `CODE: message`, or what went wrong on the way. */
export function describeError(err) {
  if (err && err.code) return `${err.status} ${err.code}: ${err.message}`;
  return (err && err.message) || String(err);
}

/** `2026-01-02 15:04:05` in local time, inside a <time> carrying the exact API value. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  return h('time', { datetime: iso, title: iso }, localTime(d));
}

export function localTime(d) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** `<input type=datetime-local>` value (local time, seconds) for a Date. */
export function localInputValue(d) {
  return localTime(d).replace(' ', 'T');
}

/** One term and its value in a <dl>, grouped so that the list can lay pairs out in a grid. */
export function pair(label, value, props) {
  return h('div', { class: 'pair' }, h('dt', {}, label), h('dd', props || {}, value));
}

/** A status or outcome as a labelled badge. */
export function badge(value, label) {
  return h('span', { class: `badge ${value.replace(/[^a-z_-]/gi, '')}` }, label || value.replace(/_/g, ' '));
}

/** A UUIDv4 for Idempotency-Key. crypto.randomUUID exists only in secure contexts (https,
 *  localhost); getRandomValues exists everywhere. */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Asks with the page's confirmation dialog; resolves true when confirmed. */
export function confirmDialog(title, text, action) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = action;
  const form = document.getElementById('confirm-form');
  const cancel = document.getElementById('confirm-cancel');
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const done = (answer) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    };
    const onSubmit = (e) => { e.preventDefault(); done(true); };
    const onCancel = (e) => { e.preventDefault(); done(false); };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    cancel.focus();
  });
}

/** Copies text; falls back to selecting it where the clipboard API is unavailable. */
export async function copy(text, selectable) {
  try {
    await navigator.clipboard.writeText(text);
    return 'Copied to the clipboard.';
  } catch {
    if (selectable) {
      const range = document.createRange();
      range.selectNodeContents(selectable);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
    return 'The clipboard is not available here: the text is selected, press Ctrl+C to copy it.';
  }
}
