// A customer: today's balance per currency, their orders, and their outstanding amount
// through time. The API has no balance history, so the history is sampled: the balance
// is asked as of the positions of the customer's orders' events (each a real change).

import { api, describe, isAbort, withRetry } from '../api.js';
import { h, loading, errorBox, table, parseMs } from '../dom.js';
import { formatMoney } from '../money.js';
import { stepChart } from '../chart.js';
import { drawBalance } from './order.js';
import { ORDER_HEADERS, orderRows } from './orders.js';

const MAX_ORDERS = 25; // orders whose events are read for the chart
const MAX_POINTS = 50;

/** Runs `work(item)` for every item, at most `limit` at a time, in order. */
async function mapLimited(items, limit, work) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; results[i] = await work(items[i]); } };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** At most `max` of `items`, evenly spread, always keeping the first and the last. */
function sample(items, max) {
  if (items.length <= max) return items;
  return Array.from({ length: max }, (_, i) => items[Math.round((i * (items.length - 1)) / (max - 1))]);
}

export function render({ main, params: [customerId], signal }) {
  document.title = `Customer ${customerId} · Ledger console`;
  const id = encodeURIComponent(customerId);
  const balance = h('div', {}, loading());
  const orders = h('div', {}, loading());
  const history = h('div', { 'aria-live': 'polite' }, loading('Loading the history…'));
  main.append(
    h('h1', {}, 'Customer ', h('span', { class: 'mono' }, customerId)),
    h('section', { 'aria-labelledby': 'bal-h' }, h('h2', { id: 'bal-h' }, 'Balance'), balance),
    h('section', { 'aria-labelledby': 'hist-h' }, h('h2', { id: 'hist-h' }, 'Outstanding over time'), history),
    h('section', { 'aria-labelledby': 'ord-h' }, h('h2', { id: 'ord-h' }, 'Orders'), orders));

  const retry = (region) => ({ signal, onWait: (text) => region.replaceChildren(loading(text)) });
  withRetry(() => api(`/v1/customers/${id}/balance`, { signal }), retry(balance))
    .then((answer) => balance.replaceChildren(drawBalance(answer)))
    .catch((error) => isAbort(error) || balance.replaceChildren(errorBox(describe(error))));

  withRetry(() => api('/v1/payments', { query: { customer_id: customerId, limit: 500 }, signal }), retry(orders))
    .then((page) => {
      orders.replaceChildren(page.items.length
        ? table(ORDER_HEADERS, orderRows(page.items), { label: 'Orders' }) : h('p', {}, 'No orders in the read model.'),
      page.next_cursor ? h('p', { class: 'hint' }, 'The first 500 orders are shown.') : '');
      drawHistory(history, page.items.slice(-MAX_ORDERS), customerId, signal)
        .catch((error) => isAbort(error) || history.replaceChildren(errorBox(describe(error))));
    })
    .catch((error) => {
      if (isAbort(error)) return;
      orders.replaceChildren(errorBox(describe(error)));
      history.replaceChildren();
    });
}

async function drawHistory(region, orders, customerId, signal) {
  if (!orders.length) { region.replaceChildren(h('p', {}, 'No history yet.')); return; }
  // Every event of the customer's (latest) orders is a moment the balance may change.
  const histories = await mapLimited(orders, 4, (order) =>
    withRetry(() => api(`/v1/orders/${order.order_id}/events`, { signal }), { signal }));
  const moments = new Map();
  for (const { events } of histories) {
    for (const event of events) moments.set(event.position, event.recorded_at);
  }
  const cuts = sample([...moments].sort(([a], [b]) => a - b), MAX_POINTS);
  region.replaceChildren(loading(`Reading the balance at ${cuts.length} points…`));
  const balances = await mapLimited(cuts, 4, ([position]) => withRetry(
    () => api(`/v1/customers/${encodeURIComponent(customerId)}/balance`, { query: { at_position: position }, signal }),
    { signal, onWait: (text) => region.replaceChildren(loading(text)) }));
  const currencies = [...new Set(balances.flatMap((b) => b.balances.map((entry) => entry.currency)))].sort();
  region.replaceChildren(...currencies.map((currency) => {
    const points = cuts.map(([position, recordedAt], i) => {
      const minor = balances[i].balances.find((entry) => entry.currency === currency)?.outstanding ?? 0;
      const value = formatMoney(minor, currency);
      return { x: parseMs(recordedAt), y: Number(minor), value, label: [recordedAt, String(position), value] };
    });
    const last = points.at(-1);
    const peak = points.reduce((best, p) => (p.y > best.y ? p : best), points[0]);
    return h('div', {},
      h('h3', {}, currency),
      stepChart({
        points,
        summary: `Outstanding ${currency} balance of ${customerId} at ${points.length} points from ${cuts[0][1]} to ${cuts.at(-1)[1]}: highest ${peak.value}, now ${last.value}.`,
        columns: ['Time', 'Position', 'Outstanding'],
        caption: { zero: formatMoney(0, currency), text: `From ${cuts[0][1]} to ${cuts.at(-1)[1]}; now ${last.value}.` },
      }));
  }));
  if (!currencies.length) region.replaceChildren(h('p', {}, 'No balance recorded.'));
}
