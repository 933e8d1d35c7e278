// What changed between two points of an order's history, computed in the browser from
// two as-of answers (the API answers one point at a time). Kept apart from the page so
// the rules of the comparison read in one place.

import { formatMoney } from '../money.js';
import { words } from '../dom.js';

/** The customer's outstanding balance in `currency` from a balance answer (0 when none). */
const outstandingIn = (balance, currency) =>
  balance?.balances?.find((entry) => entry.currency === currency)?.outstanding ?? 0;

/**
 * `a` and `b` are points ({included: number of the order's events inside the cut}),
 * `dataA`/`dataB` their answers ({order, balance}); `events` the whole timeline.
 * Returns the events between the points and each field that differs, from A to B.
 */
export function compare(events, a, b, dataA, dataB) {
  const low = Math.min(a.included, b.included);
  const high = Math.max(a.included, b.included);
  const between = events.slice(low, high).map((event) => `${event.event_type} (version ${event.stream_version})`);
  const direction = b.included > a.included ? 'forward' : b.included < a.included ? 'back' : 'same';

  const currency = dataA.order.currency;
  const amount = (minor) => formatMoney(minor, currency);
  const fields = [
    ['status', (o) => o.status, words],
    ['total', (o) => o.total_minor, amount],
    ['captured', (o) => o.captured_minor, amount],
    ['refunded', (o) => o.refunded_minor, amount],
    ['outstanding', (o) => o.outstanding_minor, amount],
    ['fully paid', (o) => o.fully_paid, (paid) => (paid ? 'yes' : 'no')],
    ['payments', (o) => o.payments.length, String],
    ['failed attempts', (o) => o.failed_payment_attempts, String],
  ];
  const changes = fields
    .filter(([, read]) => read(dataA.order) !== read(dataB.order))
    .map(([field, read, show]) => `${field}: ${show(read(dataA.order))} → ${show(read(dataB.order))}`);
  if (dataA.balance && dataB.balance) {
    const before = outstandingIn(dataA.balance, currency);
    const after = outstandingIn(dataB.balance, currency);
    if (before !== after) changes.push(`balance: ${amount(before)} → ${amount(after)}`);
  }
  return { between, direction, changes, balanceKnown: Boolean(dataA.balance && dataB.balance) };
}
