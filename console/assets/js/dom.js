// Building the page from data without innerHTML: every value the API returns (an
// order's payload, an error message) becomes text, never markup, so nothing in the
// ledger's data can inject script or style. Also the few formats every page shares.

import { formatMoney } from './money.js';

/**
 * h('a', {href, class: 'x', 'data-id': 1, onclick: fn}, 'text', child, [more])
 * Attributes whose value is false, null or undefined are left out; `true` sets a
 * boolean attribute; functions named on… become listeners.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  element.append(...flatten(children));
  return element;
}

function flatten(children) {
  return children.flat(Infinity)
    .filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (child instanceof Node ? child : String(child)));
}

/** element.replaceChildren, taking the same children as h() (arrays, null). */
export const put = (element, ...children) => element.replaceChildren(...flatten(children));

/**
 * A region that scrolls sideways when what it holds is wider than the screen (a table on
 * a phone): named, and focusable so that a keyboard can scroll it too.
 */
export const scrollable = (label, content) =>
  h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, content);

/** A table in a horizontally scrolling region named `label` (else its caption). */
export function table(headers, rows, { caption, className, label } = {}) {
  return scrollable(label ?? caption ?? 'Table',
    h('table', { class: className },
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((header) => h('th', { scope: 'col' }, header)))),
      h('tbody', {}, rows)));
}

export const loading = (text = 'Loading…') => h('p', { class: 'loading', role: 'status' }, text);
export const errorBox = (text) => h('div', { class: 'error', role: 'alert' }, text);
export const notice = (text) => h('p', { class: 'notice', role: 'status' }, text);

/** A collapsed pretty-printed JSON value. */
export const jsonDetails = (summary, value) =>
  h('details', { class: 'json' }, h('summary', {}, summary), h('pre', {}, JSON.stringify(value, null, 2)));

/** An amount as a `<data>` element holding the exact minor units for machines. */
export function money(minor, currency, attributes = {}) {
  return h('data', { class: 'money', value: minor, 'data-minor': minor, 'data-currency': currency, ...attributes },
    formatMoney(minor, currency));
}

/** A definition list from [term, value] pairs (values may be nodes). */
export const facts = (pairs) =>
  h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([term, value]) => [h('dt', {}, term), h('dd', {}, value ?? '—')]));

/** Times are shown as the API gives them: ISO 8601 with the zone. */
export const time = (iso) => (iso ? h('time', { datetime: iso }, iso) : '—');

/** Milliseconds of an RFC 3339 time, exact to the millisecond (finer digits dropped). */
export const parseMs = (iso) => Date.parse(iso.replace(/(\.\d{3})\d+/, '$1'));

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export const count = (n) => (n === null || n === undefined ? '—' : new Intl.NumberFormat().format(n));
export const words = (snake) => String(snake ?? '—').replaceAll('_', ' ');

/**
 * Replaces `container`'s content while keeping keyboard focus on the "same" control in
 * the new content (a poll redraws buttons every second or two; focus must not jump).
 * When that control is gone, `fallback()` names where focus goes instead.
 */
export function replaceKeepingFocus(container, children, fallback) {
  // A poll that changed nothing leaves the page alone: no layout, no paint, no focus
  // moved (the listeners of equal markup are the same callbacks).
  const next = h('div', {}, children);
  if (next.innerHTML === container.innerHTML) return;
  const keyOf = (element) => ['id', 'data-action', 'data-projection', 'data-key'].map((name) => element.getAttribute(name)).join('|');
  const focused = container.contains(document.activeElement) ? document.activeElement : null;
  const key = focused && keyOf(focused);
  container.replaceChildren(...next.childNodes);
  if (!key) return;
  const same = [...container.querySelectorAll('button, a, input, select, summary')].find((candidate) => keyOf(candidate) === key);
  (same ?? fallback?.(focused))?.focus();
}
