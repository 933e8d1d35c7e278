// Messages a projection parked after its retries. A parked message holds its
// projection's watermark back (as-of reads of later cuts wait on it), so each one is
// worth a look; an admin can re-drive it once the cause is fixed.

import { api, describe, isAbort, withRetry } from '../api.js';
import { h, table, loading, errorBox, time, jsonDetails } from '../dom.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function render({ main, session, signal }) {
  document.title = 'Dead letters · Ledger console';
  const admin = session.access === 'admin';
  const region = h('div', {}, loading());
  const status = h('div', { 'aria-live': 'polite' });
  main.append(h('h1', { tabindex: -1 }, 'Dead letters'), status, region);

  async function load() {
    try {
      const { items } = await withRetry(() => api('/v1/admin/dead-letters', { signal }),
        { signal, onWait: (text) => region.replaceChildren(loading(text)) });
      // The list keeps re-driven messages for the record; only parked ones need action.
      const parked = items.filter((item) => !item.redriven_at);
      region.replaceChildren(parked.length === 0 ? h('p', {}, 'No parked messages.')
        : table(['Id', 'Projection', 'Event type', 'Order', 'Error', 'Attempts', 'Parked at', 'Message', admin ? 'Actions' : null].filter(Boolean),
          parked.map((item) => row(item, admin, redrive)), { label: 'Dead letters' }));
    } catch (error) {
      if (!isAbort(error)) region.replaceChildren(errorBox(describe(error)));
    }
  }

  async function redrive(item, button) {
    button.disabled = true;
    status.replaceChildren(h('p', { role: 'status' }, `Re-driving dead letter ${item.id}…`));
    try {
      await api(`/v1/admin/dead-letters/${item.id}/redrive`, { method: 'POST', signal });
      status.replaceChildren(h('p', { role: 'status' }, `Dead letter ${item.id} was applied.`));
      await load();
      main.querySelector('h1').focus();
    } catch (error) {
      if (isAbort(error)) return;
      button.disabled = false;
      status.replaceChildren(errorBox(`Dead letter ${item.id} could not be re-driven: ${describe(error)}`));
    }
  }

  load();
}

function row(item, admin, redrive) {
  // The bus keys messages by order id, so the key names the order.
  const order = item.order_id ?? item.key;
  return h('tr', { 'data-dead-letter-id': item.id },
    h('td', { class: 'num' }, item.id),
    h('td', {}, item.projection),
    h('td', {}, item.event_type ?? '—'),
    h('td', { class: 'mono' }, order && UUID.test(order) ? h('a', { href: `/console/orders/${order}` }, order) : (order ?? '—')),
    h('td', { class: 'error-text' }, item.error),
    h('td', { class: 'num' }, item.attempts),
    h('td', {}, time(item.created_at)),
    h('td', {}, jsonDetails('Message', item.payload ?? { topic: item.topic, partition: item.partition, offset: item.offset, key: item.key })),
    admin ? h('td', {}, h('button', {
      type: 'button', 'data-action': 'redrive', 'data-key': item.id, onclick: (event) => redrive(item, event.currentTarget),
    }, 'Re-drive')) : null);
}
