// Orders: find an order by id or a customer's orders, and browse the payments read
// model's orders. The search is in the URL (?q=…) so a result can be linked and the
// back button returns to it.

import { api, describe, isAbort, withRetry } from '../api.js';
import { h, loading, errorBox, money, time, scrollable, words } from '../dom.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Rows of payment summaries (`/v1/payments` items), each linking to its order. */
export function orderRows(items) {
  return items.map((item) => h('tr', {},
    h('td', {}, h('a', { href: `/console/orders/${item.order_id}`, class: 'mono' }, item.order_id)),
    h('td', {}, h('a', { href: `/console/customers/${encodeURIComponent(item.customer_id)}` }, item.customer_id)),
    h('td', {}, words(item.status)),
    h('td', { class: 'num' }, money(item.amount_due, item.currency)),
    h('td', { class: 'num' }, money(item.captured, item.currency)),
    h('td', { class: 'num' }, money(item.refunded, item.currency)),
    h('td', { class: 'num' }, money(item.outstanding, item.currency)),
    h('td', {}, time(item.updated_at))));
}

export const ORDER_HEADERS = ['Order', 'Customer', 'Status', 'Due', 'Captured', 'Refunded', 'Outstanding', 'Updated'];

/**
 * A page of `/v1/payments` with `filter` into `region`, newest first, and a "Show more"
 * button while the API has a next page.
 */
function listOrders(region, filter, signal, emptyText, label) {
  const rows = h('tbody');
  const more = h('div', { class: 'more' });
  region.replaceChildren(loading());
  const load = async (cursor) => {
    try {
      const page = await withRetry(() => api('/v1/payments', { query: { ...filter, order: 'newest', cursor }, signal }),
        { signal, onWait: (text) => (cursor ? more : region).replaceChildren(loading(text)) });
      if (!cursor) {
        region.replaceChildren(page.items.length === 0 ? h('p', {}, emptyText)
          : scrollable(label, h('table', {},
            h('thead', {}, h('tr', {}, ORDER_HEADERS.map((name) => h('th', { scope: 'col' }, name)))), rows)), more);
      }
      rows.append(...orderRows(page.items));
      const hadFocus = more.contains(document.activeElement);
      more.replaceChildren(page.next_cursor
        ? h('button', { type: 'button', class: 'secondary', onclick: () => load(page.next_cursor) }, 'Show more')
        : '');
      if (hadFocus) (more.querySelector('button') ?? rows.querySelector('tr:last-child a'))?.focus();
    } catch (error) {
      if (!isAbort(error)) (cursor ? more : region).replaceChildren(errorBox(describe(error)));
    }
  };
  load();
}

export function render({ main, query, signal, navigate }) {
  document.title = 'Orders · Ledger console';
  const q = query.get('q') ?? '';
  const input = h('input', { id: 'search', name: 'q', type: 'search', value: q, autocomplete: 'off', spellcheck: 'false' });
  const form = h('form', { class: 'search', role: 'search' },
    h('label', { for: 'search' }, 'Order id or customer id'),
    h('div', { class: 'inline' }, input, h('button', { type: 'submit' }, 'Find')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (UUID.test(text)) navigate(`/console/orders/${text.toLowerCase()}`);
    else if (text) navigate(`/console/orders?q=${encodeURIComponent(text)}`);
  });

  const results = h('section', { 'aria-labelledby': 'results-heading', 'aria-live': 'polite' });
  const all = h('section', { 'aria-labelledby': 'all-heading' },
    h('h2', { id: 'all-heading' }, 'Recent orders'),
    h('p', { class: 'hint' }, 'From the payments read model, the most recently placed first.'));
  const allList = h('div');
  all.append(allList);
  main.append(h('h1', {}, 'Orders'), form, results, all);

  if (q) {
    const list = h('div');
    results.append(
      h('h2', { id: 'results-heading' }, 'Orders of customer ', h('span', { class: 'mono' }, q)),
      h('p', {}, h('a', { href: `/console/customers/${encodeURIComponent(q)}` }, `Balance and history of ${q}`)),
      list);
    listOrders(list, { customer_id: q, limit: 50 }, signal, 'This customer has no orders in the read model.', `Orders of customer ${q}`);
  }
  listOrders(allList, { limit: 20 }, signal, 'No orders yet.', 'Recent orders');
}
