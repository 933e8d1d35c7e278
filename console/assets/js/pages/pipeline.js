// The pipeline from store to read models: the relay publishing events, each projection
// applying them, and rebuilds. Polled (every 5 s, every 0.5 s while a rebuild runs) only
// while the tab is visible and this page is open: an operator's open tab should not load
// the ledger when nobody looks.

import { api, describe, isAbort } from '../api.js';
import { h, table, facts, time, errorBox, count, duration, words, replaceKeepingFocus } from '../dom.js';

// As often as a dashboard refreshes (Grafana's shortest default): each look costs the
// ledger a few status queries, measurable under load at every 2 s.
const SLOW_MS = 5000;
const FAST_MS = 500;
const ENDED = new Set(['done', 'cancelled', 'failed']);
const PHASES = {
  replaying: 'Replaying the event store',
  indexing: 'Building indexes',
  watermark: 'Bringing the watermark up to date',
  catching_up: 'Catching up with new events',
  swapping: 'Swapping the new generation in',
  finished: 'Finished, completing',
  done: 'Finished: done',
  cancelled: 'Cancelled',
  failed: 'Failed',
};

export function render({ main, session, signal }) {
  document.title = 'Pipeline · Ledger console';
  const admin = session.access === 'admin';
  const updated = h('p', { class: 'hint' }, 'Loading…');
  const relayRegion = h('div');
  const projectionsRegion = h('div');
  const rebuildsRegion = h('div');
  const workersRegion = h('div');
  const actionStatus = h('div', { 'aria-live': 'polite' });
  const announcer = h('p', { class: 'visually-hidden', role: 'status' });
  main.append(
    h('h1', {}, 'Pipeline'), updated, actionStatus, announcer,
    h('section', { 'aria-labelledby': 'relay-h' }, h('h2', { id: 'relay-h' }, 'Relay'), relayRegion),
    h('section', { 'aria-labelledby': 'proj-h' }, h('h2', { id: 'proj-h' }, 'Projections'), projectionsRegion, rebuildsRegion),
    h('section', { 'aria-labelledby': 'work-h' }, h('h2', { id: 'work-h' }, 'Workers in this process'), workersRegion));

  let timer = null;
  let busy = false;
  const phases = new Map(); // last phase seen per rebuild, to announce changes only

  async function tick() {
    clearTimeout(timer);
    timer = null;
    if (busy || signal.aborted || document.visibilityState !== 'visible') return;
    busy = true;
    const [relay, projections] = await Promise.allSettled([
      api('/v1/admin/relay', { signal }), api('/v1/admin/projections', { signal })]);
    busy = false;
    if (signal.aborted) return;
    if (relay.status === 'fulfilled') replaceKeepingFocus(relayRegion, drawRelay(relay.value));
    else if (!isAbort(relay.reason)) relayRegion.replaceChildren(errorBox(describe(relay.reason)));
    let running = false;
    if (projections.status === 'fulfilled') {
      const view = projections.value;
      running = view.rebuilds.some((rebuild) => !ENDED.has(rebuild.state));
      replaceKeepingFocus(projectionsRegion, drawProjections(view.projections, admin, confirmRebuild));
      // A finished rebuild loses its Cancel button: focus goes back to its Rebuild button.
      replaceKeepingFocus(rebuildsRegion, view.rebuilds.map((rebuild) => drawRebuild(rebuild, admin, cancelRebuild)),
        (gone) => projectionsRegion.querySelector(`[data-action="rebuild"][data-projection="${gone.dataset.projection}"]`));
      replaceKeepingFocus(workersRegion, drawWorkers(view.workers));
      for (const rebuild of view.rebuilds) {
        if (phases.has(rebuild.projection) && phases.get(rebuild.projection) !== rebuild.state) {
          announcer.textContent = `Rebuild of ${rebuild.projection}: ${PHASES[rebuild.state] ?? words(rebuild.state)}`;
        }
        phases.set(rebuild.projection, rebuild.state);
      }
    } else if (!isAbort(projections.reason)) {
      projectionsRegion.replaceChildren(errorBox(describe(projections.reason)));
    }
    updated.textContent = `Updated ${new Date().toISOString()}; refreshes every ${running ? '0.5' : '5'} s while this tab is visible.`;
    timer = setTimeout(tick, running ? FAST_MS : SLOW_MS);
  }

  // --- admin actions -----------------------------------------------------------------
  let dialog = null;
  async function act(method, name, done) {
    actionStatus.replaceChildren();
    try {
      await api(`/v1/admin/projections/${encodeURIComponent(name)}/rebuild`, { method, signal });
      actionStatus.replaceChildren(h('p', { role: 'status' }, done));
      tick();
    } catch (error) {
      if (!isAbort(error)) actionStatus.replaceChildren(errorBox(describe(error)));
    }
  }
  function confirmRebuild(name) {
    dialog.querySelector('.dialog-text').textContent = `Rebuild ${name} by replaying the whole event store? Queries keep reading the current generation until the new one is swapped in; nothing is sent again.`;
    dialog.returnValue = '';
    dialog.onclose = () => {
      if (dialog.returnValue === 'confirm') act('POST', name, `Rebuild of ${name} started.`);
      // Polls redraw the buttons meanwhile: return focus to the current one.
      main.querySelector(`[data-action="rebuild"][data-projection="${name}"]`)?.focus();
    };
    dialog.showModal();
  }
  const cancelRebuild = (name) => act('DELETE', name, `Cancelling the rebuild of ${name}.`);
  if (admin) {
    dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'rebuild-dialog-h' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'rebuild-dialog-h' }, 'Rebuild a projection'),
        h('p', { class: 'dialog-text' }),
        h('div', { class: 'inline' },
          h('button', { type: 'submit', value: 'confirm' }, 'Rebuild'),
          h('button', { type: 'submit', value: 'cancel', class: 'secondary', autofocus: true }, 'Keep as it is'))));
    main.append(dialog);
  }

  const onVisibility = () => { if (document.visibilityState === 'visible' && !timer) tick(); };
  document.addEventListener('visibilitychange', onVisibility);
  tick();
  return () => {
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
    if (dialog?.open) dialog.close();
  };
}

function drawRelay({ process, store }) {
  return facts([
    ['Role in this process', process ? words(process.role) : 'no relay runs in this process'],
    ['Broker', process ? words(process.broker) : '—'],
    ['Backlog', `${count(store.backlog)} events`],
    ['Behind the store by', duration(store.lag_seconds)],
    ['Last publish', time(store.last_published_at)],
    ['Oldest open transaction', store.oldest_open_transaction_seconds === null ? 'none' : duration(store.oldest_open_transaction_seconds)],
    ['Checkpoint', store.checkpoint ? `position ${store.checkpoint.global_position} (transaction ${store.checkpoint.tx_id})` : 'nothing published yet'],
    ['Published events', count(store.published_events)],
    process?.last_error ? ['Last error', process.last_error] : null,
  ]);
}

function drawProjections(projections, admin, confirmRebuild) {
  return table(
    ['Projection', 'Applied events', 'Lag (events)', 'Holes below', 'Watermark', 'Complete through', 'Watermark age', 'Dead letters', admin ? 'Actions' : null].filter(Boolean),
    projections.map((p) => h('tr', { 'data-projection': p.projection },
      h('th', { scope: 'row' }, p.projection),
      h('td', { class: 'num' }, count(p.applied_events)),
      h('td', { class: 'num' }, count(p.lag_events)),
      h('td', { class: 'num' }, count(p.unapplied_below_highest)),
      h('td', { class: 'num' }, p.watermark_position),
      h('td', {}, time(p.complete_through)),
      h('td', { class: 'num' }, duration(p.watermark_age_seconds)),
      h('td', { class: 'num' }, p.dead_letters > 0 ? h('a', { href: '/console/dead-letters' }, count(p.dead_letters)) : '0'),
      admin ? h('td', {}, h('button', {
        type: 'button', 'data-action': 'rebuild', 'data-projection': p.projection, onclick: () => confirmRebuild(p.projection),
      }, 'Rebuild')) : null)), { label: 'Projections' });
}

function drawRebuild(r, admin, cancelRebuild) {
  const ended = ENDED.has(r.state);
  return h('div', { class: 'rebuild', 'data-projection': r.projection, 'data-phase': r.state },
    h('h3', {}, `Rebuild of ${r.projection}`),
    h('p', { class: 'phase' }, PHASES[r.state] ?? words(r.state)),
    h('progress', { max: Math.max(r.total, 1), value: Math.min(r.replayed, Math.max(r.total, 1)), 'aria-label': `Rebuild of ${r.projection}` }),
    h('p', {}, `${count(r.replayed)} of ${count(r.total)} events`,
      ended ? '' : ` · ${count(Math.round(r.events_per_second))} events/s · ETA ${duration(r.eta_seconds)}`),
    h('p', { class: 'hint' }, `Started `, time(r.started_at), r.finished_at ? [', ended ', time(r.finished_at)] : '', ` · schema ${r.schema}`),
    r.error ? errorBox(r.error) : null,
    r.phases.length ? h('p', { class: 'hint' }, r.phases.map((p) => `${words(p.phase)} ${duration(p.seconds)}`).join(' · ')) : null,
    admin && !ended ? h('button', {
      type: 'button', class: 'danger', 'data-action': 'cancel-rebuild', 'data-projection': r.projection, onclick: () => cancelRebuild(r.projection),
    }, 'Cancel') : null);
}

function drawWorkers(workers) {
  if (!workers.length) return h('p', {}, 'No projection workers run in this process.');
  return table(['Projection', 'State', 'Applied', 'Consumer lag', 'Partitions', 'Last error'], workers.map((w) => h('tr', {},
    h('th', { scope: 'row' }, w.projection), h('td', {}, words(w.state)), h('td', { class: 'num' }, count(w.applied_events)),
    h('td', { class: 'num' }, count(w.lag_messages)), h('td', {}, w.partitions?.join(', ') ?? '—'), h('td', {}, w.last_error ?? '—'))), { label: 'Projection workers' });
}
