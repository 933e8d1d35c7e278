// One order through time: its event timeline, and a slider that redraws the order, its
// payments, its notifications and the customer's balance as of any event or instant,
// each from the API's as-of queries (so what is shown is what the ledger answers for
// that cut, not a replay in the browser). A second slider compares two points.

import { api, cutQuery, describe, isAbort, withRetry } from '../api.js';
import { h, put, table, loading, errorBox, money, facts, time, jsonDetails, parseMs, words } from '../dom.js';
import { compare } from './compare.js';

const DEBOUNCE_MS = 100;

export function render({ main, params: [orderId], signal }) {
  document.title = `Order ${orderId} · Ledger console`;
  const body = h('div', {}, loading('Loading the order’s history…'));
  main.append(h('h1', {}, 'Order ', h('span', { class: 'mono' }, orderId)), body);
  const path = `/v1/orders/${encodeURIComponent(orderId)}`;
  Promise.all([
    withRetry(() => api(`${path}/events`, { signal }), { signal, onWait: (text) => body.replaceChildren(loading(text)) }),
    withRetry(() => api(path, { signal }), { signal }),
  ]).then(([history, latest]) => timeTravel(body, path, history.events, latest, signal), (error) => {
    if (!isAbort(error)) body.replaceChildren(errorBox(describe(error, { notFound: 'No such order' })));
  });
}

/** The slider's scale in time mode: milliseconds from the first event, coarser for long histories. */
function timeScale(times) {
  const span = times.at(-1) - times[0];
  const step = span <= 10_000 ? 1 : span <= 100_000 ? 10 : span <= 1_000_000 ? 100 : 1000;
  return { step, max: Math.ceil(span / step) * step };
}

function timeTravel(body, path, events, latest, pageSignal) {
  const n = events.length;
  const times = events.map((event) => parseMs(event.recorded_at));
  const scale = timeScale(times);
  const customerPath = `/v1/customers/${encodeURIComponent(latest.customer_id)}/balance`;
  let mode = 'event';

  // A point: the cut the API is asked for, and how many of this order's events it holds.
  function pointOf(value) {
    if (mode === 'event') {
      const event = events[value - 1];
      return { mode, position: event.position, included: value, event };
    }
    const ms = times[0] + value;
    const included = times.filter((t) => t <= ms).length;
    // The slider counts whole milliseconds; the store keeps microseconds, so the cut
    // takes the whole chosen millisecond (…642999Z), as the count above does.
    const shown = new Date(ms).toISOString();
    return { mode, shown, asOf: shown.replace('Z', '999Z'), included, event: events[included - 1] };
  }
  const valueFor = (point) => (mode === 'event' ? point.included
    : Math.min(scale.max, Math.ceil((times[point.included - 1] - times[0]) / scale.step) * scale.step));
  const valueText = (p) => (p.mode === 'event'
    ? `Event ${p.included} of ${n}: ${p.event.event_type} at position ${p.position}`
    : `${p.shown}: after event ${p.included} of ${n}, ${p.event.event_type}`);

  // --- controls --------------------------------------------------------------------
  const modeRadio = (value, label) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'step-mode', value, checked: value === 'event', onchange: () => switchMode(value) }), ` ${label}`);
  const sliderA = h('input', { type: 'range', id: 'slider' });
  const outputA = h('output', { id: 'as-of', for: 'slider' });
  const sliderB = h('input', { type: 'range', id: 'slider-b' });
  const outputB = h('output', { id: 'as-of-b', for: 'slider-b' });
  const compareToggle = h('button', { type: 'button', id: 'compare-toggle', class: 'secondary', 'aria-pressed': 'false' }, 'Compare');
  const compareControls = h('div', { class: 'slider-row', hidden: true },
    h('label', { for: 'slider-b' }, 'Compare with'), sliderB, outputB);
  const comparison = h('section', { id: 'comparison', 'aria-live': 'polite', hidden: true });

  const configure = (slider) => Object.assign(slider, mode === 'event'
    ? { min: 1, max: n, step: 1 } : { min: 0, max: scale.max, step: scale.step });
  configure(sliderA);
  configure(sliderB);
  sliderA.value = n;
  sliderB.value = Math.max(1, n - 1);

  // --- panels ----------------------------------------------------------------------
  const panel = (id, title, hint) => h('section', { id, class: 'panel', 'aria-labelledby': `${id}-h` },
    h('h2', { id: `${id}-h` }, title), hint ? h('p', { class: 'hint' }, hint) : null,
    h('p', { class: 'panel-status' }), h('div', { class: 'panel-body' }));
  const panels = {
    order: panel('order-state', 'Order', 'From the event store, as of the chosen point.'),
    payments: panel('payments', 'Payments (read model)'),
    notifications: panel('notifications', 'Notifications', 'Which were created by then; delivery status is today’s.'),
    balance: panel('balance', 'Customer balance', `All orders of ${latest.customer_id}.`),
  };
  const rows = events.map((event, index) => timelineRow(event, () => {
    if (mode !== 'event') { document.querySelector('input[name="step-mode"][value="event"]').checked = true; switchMode('event'); }
    sliderA.value = index + 1;
    changed();
    sliderA.focus();
  }));

  body.replaceChildren(
    facts([
      ['Customer', h('a', { href: `/console/customers/${encodeURIComponent(latest.customer_id)}` }, latest.customer_id)],
      ['Currency', latest.currency],
      ['Placed', time(events[0].recorded_at)],
      ['Events', String(n)],
    ]),
    h('section', { class: 'time-travel', 'aria-labelledby': 'tt-h' },
      h('h2', { id: 'tt-h' }, 'Point in time'),
      h('fieldset', { class: 'mode' }, h('legend', {}, 'Step'), modeRadio('event', 'By event'), modeRadio('time', 'By time')),
      h('div', { class: 'slider-row' }, h('label', { for: 'slider' }, 'Show the order as of'), sliderA, outputA),
      compareToggle, compareControls),
    comparison,
    h('div', { class: 'panels' }, Object.values(panels)),
    h('section', { 'aria-labelledby': 'timeline-h' }, h('h2', { id: 'timeline-h' }, 'Timeline'),
      table(['View', 'Version', 'Type', 'Event version', 'Position', 'Recorded at', 'Actor', 'Correlation id', 'Causation id', 'Payload'],
        rows, { className: 'timeline', label: 'Event timeline' })));

  // --- drawing a point -------------------------------------------------------------
  function describeInto(output, slider, point) {
    slider.setAttribute('aria-valuetext', valueText(point));
    if (point.mode === 'event') {
      output.dataset.position = point.position;
      delete output.dataset.asOf;
      output.textContent = `Event ${point.included} of ${n}: ${point.event.event_type} (version ${point.event.stream_version}) at position ${point.position}, recorded ${point.event.recorded_at}`;
    } else {
      delete output.dataset.position;
      output.dataset.asOf = point.shown;
      output.textContent = `As of ${point.shown}: ${point.included} of ${n} events (last: ${point.event.event_type} at position ${point.event.position})`;
    }
  }

  function markTimeline(a, b) {
    rows.forEach((row, index) => {
      if (index === a.included - 1) row.setAttribute('aria-current', 'step');
      else row.removeAttribute('aria-current');
      row.classList.toggle('later', index >= a.included);
      row.classList.toggle('point-b', Boolean(b) && index === b.included - 1);
    });
  }

  // Each redraw gets its own AbortController: a newer point aborts the older requests,
  // so a slow answer for an old point can never overwrite a newer one.
  let controllerA = null;
  let controllerC = null;
  pageSignal.addEventListener('abort', () => { controllerA?.abort(); controllerC?.abort(); });

  async function fill(section, request, draw, signal, notFound) {
    const status = section.querySelector('.panel-status');
    const content = section.querySelector('.panel-body');
    section.setAttribute('aria-busy', 'true');
    status.textContent = 'Loading…';
    try {
      const data = await withRetry(request, { signal, onWait: (text) => { status.textContent = text; } });
      if (signal.aborted) return;
      put(content, draw(data));
      status.textContent = '';
    } catch (error) {
      if (isAbort(error) || signal.aborted) return;
      status.textContent = '';
      content.replaceChildren(errorBox(describe(error, { notFound })));
    }
    section.removeAttribute('aria-busy');
  }

  function refreshA(point) {
    controllerA?.abort();
    controllerA = new AbortController();
    const { signal } = controllerA;
    const query = cutQuery(point);
    fill(panels.order, () => api(path, { query, signal }), drawOrder, signal, 'No such order at this point');
    fill(panels.payments, () => api(`/v1/payments/${encodeURIComponent(latest.order_id)}`, { query, signal }),
      drawPayments, signal, 'The payments read model has no record of this order at this point');
    fill(panels.notifications, () => api('/v1/notifications', { query: { ...query, order_id: latest.order_id, limit: 100 }, signal }),
      drawNotifications, signal);
    fill(panels.balance, () => api(customerPath, { query, signal }), drawBalance, signal);
  }

  // Answers for a cut never change once given (the API settles a cut before answering),
  // so the comparison keeps them instead of asking again while a slider moves.
  const answers = new Map();
  async function answerFor(point, signal) {
    const query = cutQuery(point);
    const key = new URLSearchParams(query).toString();
    if (!answers.has(key)) {
      const [order, balance] = await Promise.allSettled([
        withRetry(() => api(path, { query, signal }), { signal }),
        withRetry(() => api(customerPath, { query, signal }), { signal }),
      ]);
      if (order.status === 'rejected') throw order.reason;
      const answer = { order: order.value, balance: balance.status === 'fulfilled' ? balance.value : null };
      if (answer.balance) answers.set(key, answer);
      return answer;
    }
    return answers.get(key);
  }

  async function refreshComparison(a, b) {
    controllerC?.abort();
    controllerC = new AbortController();
    const { signal } = controllerC;
    comparison.setAttribute('aria-busy', 'true');
    try {
      const [dataA, dataB] = await Promise.all([answerFor(a, signal), answerFor(b, signal)]);
      if (signal.aborted) return;
      const result = compare(events, a, b, dataA, dataB);
      const intro = { forward: 'Events from A to B:', back: 'B is earlier: going back from A to B undoes', same: '' }[result.direction];
      put(comparison,
        h('h2', {}, 'What changed from A to B'),
        h('p', {}, `A: ${valueText(a)}. B: ${valueText(b)}.`),
        result.between.length ? [h('p', {}, intro), h('ul', {}, result.between.map((text) => h('li', {}, text)))]
          : h('p', {}, 'No event of this order lies between A and B.'),
        result.changes.length ? [h('p', {}, 'Fields that differ, A → B:'), h('ul', { class: 'changes' }, result.changes.map((text) => h('li', {}, text)))]
          : h('p', {}, 'Nothing changed.'),
        result.balanceKnown ? null : h('p', { class: 'hint' }, 'The customer balance could not be read for both points.'));
    } catch (error) {
      if (!isAbort(error) && !signal.aborted) comparison.replaceChildren(h('h2', {}, 'What changed from A to B'), errorBox(describe(error)));
    }
    if (!signal.aborted) comparison.removeAttribute('aria-busy');
  }

  // --- reacting to the controls ----------------------------------------------------
  const comparing = () => compareToggle.getAttribute('aria-pressed') === 'true';
  let timer = null;
  function changed() {
    const a = pointOf(Number(sliderA.value));
    const b = comparing() ? pointOf(Number(sliderB.value)) : null;
    describeInto(outputA, sliderA, a);
    if (b) describeInto(outputB, sliderB, b);
    markTimeline(a, b);
    clearTimeout(timer);
    timer = setTimeout(() => {
      refreshA(a);
      if (b) refreshComparison(a, b);
    }, DEBOUNCE_MS);
  }
  function changedB() {
    const a = pointOf(Number(sliderA.value));
    const b = pointOf(Number(sliderB.value));
    describeInto(outputB, sliderB, b);
    markTimeline(a, b);
    clearTimeout(timer);
    timer = setTimeout(() => refreshComparison(a, b), DEBOUNCE_MS);
  }
  pageSignal.addEventListener('abort', () => clearTimeout(timer));

  function switchMode(next) {
    const a = pointOf(Number(sliderA.value));
    const b = pointOf(Number(sliderB.value));
    mode = next;
    configure(sliderA);
    configure(sliderB);
    sliderA.value = valueFor(a);
    sliderB.value = valueFor(b);
    changed();
  }

  sliderA.addEventListener('input', changed);
  sliderB.addEventListener('input', changedB);
  compareToggle.addEventListener('click', () => {
    const on = !comparing();
    compareToggle.setAttribute('aria-pressed', String(on));
    compareControls.hidden = !on;
    comparison.hidden = !on;
    if (on) {
      // By default B is one step before A: what the latest step changed.
      sliderB.value = Math.max(Number(sliderB.min), Number(sliderA.value) - Number(sliderA.step));
      changed();
    } else {
      controllerC?.abort();
      markTimeline(pointOf(Number(sliderA.value)));
    }
  });

  changed();
}

// --- how each answer is drawn ----------------------------------------------------------

function timelineRow(event, show) {
  const meta = event.metadata ?? {};
  return h('tr', { 'data-position': event.position, 'data-stream-version': event.stream_version },
    h('td', {}, h('button', { type: 'button', class: 'small secondary', onclick: show, 'aria-label': `Show the order as of version ${event.stream_version}` }, 'Show')),
    h('td', { class: 'num' }, event.stream_version),
    h('th', { scope: 'row' }, event.event_type),
    h('td', { class: 'num' }, event.event_version),
    h('td', { class: 'num' }, event.position),
    h('td', {}, time(event.recorded_at)),
    h('td', {}, meta.actor ?? '—'),
    h('td', { class: 'mono' }, meta.correlation_id ?? '—'),
    h('td', { class: 'mono' }, meta.causation_id ?? '—'),
    h('td', {}, jsonDetails('Payload', event.data), jsonDetails('Metadata', meta)));
}

function drawOrder(order) {
  const c = order.currency;
  return [
    facts([
      ['Status', h('span', { class: `status status-${order.status}`, 'data-status': order.status }, words(order.status))],
      ['Total', money(order.total_minor, c, { 'data-amount': 'total' })],
      ['Captured', money(order.captured_minor, c, { 'data-amount': 'captured' })],
      ['Refunded', money(order.refunded_minor, c, { 'data-amount': 'refunded' })],
      ['Outstanding', money(order.outstanding_minor, c, { 'data-amount': 'outstanding' })],
      ['Fully paid', order.fully_paid ? 'yes' : 'no'],
      ['Failed attempts', String(order.failed_payment_attempts)],
      order.cancellation_reason ? ['Cancellation reason', order.cancellation_reason] : null,
      order.shipment ? ['Shipment', `${order.shipment.carrier} ${order.shipment.tracking_number}`] : null,
      ['Stream version', String(order.stream_version)],
    ]),
    order.payments.length ? table(['Payment', 'Method', 'Captured', 'Refunded'], order.payments.map((p) => h('tr', {},
      h('td', { class: 'mono' }, p.payment_id), h('td', {}, p.method),
      h('td', { class: 'num' }, money(p.captured_minor, c)), h('td', { class: 'num' }, money(p.refunded_minor, c)))),
    { caption: 'Payments' }) : h('p', {}, 'No payments.'),
    h('details', {}, h('summary', {}, `Lines (${order.lines.length})`),
      table(['SKU', 'Quantity', 'Unit price', 'Subtotal'], order.lines.map((line) => h('tr', {},
        h('td', {}, line.sku), h('td', { class: 'num' }, line.quantity),
        h('td', { class: 'num' }, money(line.unit_price_minor, c)), h('td', { class: 'num' }, money(line.subtotal_minor, c)))), { label: 'Order lines' })),
  ];
}

function drawPayments(payments) {
  const c = payments.currency;
  return [
    facts([
      ['Status', words(payments.status)],
      ['Due', money(payments.amount_due, c)],
      ['Captured', money(payments.captured, c)],
      ['Refunded', money(payments.refunded, c)],
      ['Outstanding', money(payments.outstanding, c)],
      ['As of version', String(payments.stream_version)],
    ]),
    payments.attempts.length ? table(['Kind', 'Payment', 'Amount', 'Detail', 'Version', 'Recorded at'],
      payments.attempts.map((a) => h('tr', {},
        h('td', {}, words(a.kind)), h('td', { class: 'mono' }, a.payment_id), h('td', { class: 'num' }, money(a.amount, c)),
        h('td', {}, [a.method, a.reason, a.refund_id].filter(Boolean).join(' · ') || '—'),
        h('td', { class: 'num' }, a.stream_version), h('td', {}, time(a.recorded_at)))),
    { caption: 'Attempts', label: 'Payment attempts' }) : h('p', {}, 'No payment attempts.'),
  ];
}

function drawNotifications(page) {
  if (!page.items.length) return h('p', {}, 'No notifications by then.');
  return h('ul', { class: 'plain' }, page.items.map((n) => h('li', {},
    h('strong', {}, n.subject), h('br'),
    `${words(n.template)} to ${n.recipient}, created `, time(n.created_at), h('br'),
    `Delivery: ${words(n.status)}`,
    n.deliveries.length ? ` (${n.deliveries.map((d) => `${d.channel} ${words(d.status)}, ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`).join('; ')})` : '')));
}

export function drawBalance(answer) {
  if (!answer.balances.length) return h('p', {}, 'No balance by then.');
  return table(['Currency', 'Orders', 'Due', 'Captured', 'Refunded', 'Outstanding'], answer.balances.map((b) => h('tr', {},
    h('th', { scope: 'row' }, b.currency), h('td', { class: 'num' }, b.orders),
    h('td', { class: 'num' }, money(b.amount_due, b.currency)), h('td', { class: 'num' }, money(b.captured, b.currency)),
    h('td', { class: 'num' }, money(b.refunded, b.currency)), h('td', { class: 'num' }, money(b.outstanding, b.currency)))), { label: 'Balance' });
}
