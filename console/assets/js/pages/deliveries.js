// Notification delivery: the dispatcher and its queues (`/v1/admin/delivery`), and per
// notification where each channel's delivery stands. The per-notification part comes
// from `/v1/notifications`, the only endpoint that lists deliveries one by one.

import { api, describe, isAbort, withRetry } from '../api.js';
import { h, table, loading, errorBox, facts, time, count, scrollable, words } from '../dom.js';

const PAGE = 50;

export function render({ main, session, query, signal }) {
  document.title = 'Deliveries · Ledger console';
  const admin = session.access === 'admin';
  let status = query.get('status') ?? '';
  const dispatcher = h('div', {}, loading());
  const list = h('div', {}, loading());
  const actionStatus = h('div', { 'aria-live': 'polite' });
  const filter = h('select', { id: 'status-filter', name: 'status' },
    [['', 'All'], ['failed', 'Failed'], ['pending', 'Pending'], ['delivered', 'Delivered']]
      .map(([value, label]) => h('option', { value, selected: value === status }, label)));
  main.append(
    h('h1', {}, 'Deliveries'),
    h('section', { 'aria-labelledby': 'disp-h' }, h('h2', { id: 'disp-h' }, 'Dispatcher'), dispatcher),
    h('section', { 'aria-labelledby': 'notif-h' }, h('h2', { id: 'notif-h' }, 'Notifications'),
      h('div', { class: 'inline' }, h('label', { for: 'status-filter' }, 'Delivery status'), filter),
      actionStatus, list));

  withRetry(() => api('/v1/admin/delivery', { signal }), { signal }).then(({ process, queue }) => dispatcher.replaceChildren(
    process ? facts([
      ['State', words(process.state)], ['Channels', process.channels.join(', ') || 'none'],
      ['Delivered', count(process.delivered)], ['Retried', count(process.retried)], ['Failed', count(process.failed)],
      ['Last delivered', time(process.last_delivered_at)], process.last_error ? ['Last error', process.last_error] : null,
    ]) : h('p', {}, 'No dispatcher runs in this process.'),
    queue.length ? table(['Channel', 'Waiting'], queue.map((q) => h('tr', {}, h('th', { scope: 'row' }, q.channel), h('td', { class: 'num' }, count(q.waiting)))), { caption: 'Queue' })
      : h('p', {}, 'Nothing waiting.')))
    .catch((error) => isAbort(error) || dispatcher.replaceChildren(errorBox(describe(error))));

  const rows = h('tbody');
  const more = h('div', { class: 'more' });
  let generation = 0; // a list load started before the filter changed is dropped
  async function load(cursor) {
    const mine = generation;
    try {
      const page = await withRetry(() => api('/v1/notifications', { query: { status, cursor, limit: PAGE }, signal }),
        { signal, onWait: (text) => (cursor ? more : list).replaceChildren(loading(text)) });
      if (mine !== generation) return;
      if (!cursor) {
        list.replaceChildren(page.items.length ? scrollable('Notifications', h('table', {},
          h('thead', {}, h('tr', {}, ['Notification', 'Order', 'Recipient', 'Created', 'Status', 'Channels', admin ? 'Actions' : null]
            .filter(Boolean).map((name) => h('th', { scope: 'col' }, name)))), rows)) : h('p', {}, 'No notifications.'), more);
      }
      rows.append(...page.items.map((n) => row(n, admin, resend)));
      more.replaceChildren(page.next_cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => load(page.next_cursor) }, 'Show more') : '');
    } catch (error) {
      if (!isAbort(error)) (cursor ? more : list).replaceChildren(errorBox(describe(error)));
    }
  }

  async function resend(notification, button) {
    button.disabled = true;
    try {
      const answer = await api(`/v1/admin/notifications/${notification.id}/resend`, { method: 'POST', signal });
      actionStatus.replaceChildren(h('p', { role: 'status' }, `Notification ${notification.id} is queued again on ${answer.channels.join(', ')}.`));
    } catch (error) {
      if (isAbort(error)) return;
      button.disabled = false;
      actionStatus.replaceChildren(errorBox(`Notification ${notification.id} was not resent: ${describe(error)}`));
    }
  }

  // The filter is kept in the URL (linkable) but redraws the list in place, so focus
  // stays on the select.
  filter.addEventListener('change', () => {
    status = filter.value;
    generation += 1;
    actionStatus.replaceChildren();
    history.replaceState(null, '', `/console/deliveries${status ? `?status=${status}` : ''}`);
    rows.replaceChildren();
    list.replaceChildren(loading());
    load();
  });
  load();
}

function row(n, admin, resend) {
  return h('tr', { 'data-notification-id': n.id },
    h('td', {}, n.subject),
    h('td', { class: 'mono' }, h('a', { href: `/console/orders/${n.order_id}` }, n.order_id)),
    h('td', {}, n.recipient),
    h('td', {}, time(n.created_at)),
    h('td', {}, h('span', { class: `status status-${n.status}` }, words(n.status))),
    h('td', {}, n.deliveries.length ? h('ul', { class: 'plain' }, n.deliveries.map((d) => h('li', {},
      `${d.channel}: ${words(d.status)}, ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`,
      d.delivered_at ? [' at ', time(d.delivered_at)] : '', d.last_error ? h('span', { class: 'error-text' }, ` (${d.last_error})`) : '')))
      : 'no channel'),
    admin ? h('td', {}, h('button', {
      // Only a failed delivery can be sent again (the API answers 409 otherwise).
      type: 'button', 'data-action': 'resend', 'data-key': n.id, disabled: n.status !== 'failed', onclick: (event) => resend(n, event.currentTarget),
    }, 'Resend')) : null);
}
