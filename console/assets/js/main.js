// The console's frame: who is signed in, the header, and routing. Every /console/...
// path is served this same page, so the path itself (History API, real <a href> links)
// says which page to draw: a deep link or a reload lands on the right one.

import { describe, isAbort, token } from './api.js';
import { h, errorBox } from './dom.js';
import { resolveSession, renderSignIn } from './session.js';
import * as orders from './pages/orders.js';
import * as order from './pages/order.js';
import * as customer from './pages/customer.js';
import * as pipeline from './pages/pipeline.js';
import * as deadLetters from './pages/dead-letters.js';
import * as deliveries from './pages/deliveries.js';

// [path pattern, page module, nav section]; captured groups are the page's params.
const ROUTES = [
  [/^\/console\/?$/, orders, 'orders'],
  [/^\/console\/orders\/?$/, orders, 'orders'],
  [/^\/console\/orders\/([^/]+)\/?$/, order, 'orders'],
  [/^\/console\/customers\/([^/]+)\/?$/, customer, 'orders'],
  [/^\/console\/pipeline\/?$/, pipeline, 'pipeline'],
  [/^\/console\/dead-letters\/?$/, deadLetters, 'dead-letters'],
  [/^\/console\/deliveries\/?$/, deliveries, 'deliveries'],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let session = null;
let current = null; // { controller, cleanup } of the page on screen

function leavePage() {
  current?.controller.abort();
  current?.cleanup?.();
  current = null;
}

export function navigate(url) {
  history.pushState(null, '', url);
  route({ moveFocus: true });
}

async function route({ moveFocus = false } = {}) {
  leavePage();
  if (!session) return;
  const path = location.pathname;
  const match = ROUTES.map(([pattern, page, section]) => [path.match(pattern), page, section])
    .find(([found]) => found);
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.section === match?.[2]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const controller = new AbortController();
  current = { controller };
  main.replaceChildren();
  if (!match) {
    document.title = 'Not found · Ledger console';
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'The console has no page at this address. ', h('a', { href: '/console' }, 'Go to the orders')));
    return;
  }
  const [found, page] = match;
  const params = found.slice(1).map(decodeURIComponent);
  try {
    const cleanup = await page.render({
      main, params, query: new URLSearchParams(location.search), session, signal: controller.signal, navigate,
    });
    if (current?.controller === controller) current.cleanup = cleanup;
    else cleanup?.();
  } catch (error) {
    if (!isAbort(error) && !controller.signal.aborted) main.append(errorBox(describe(error)));
  }
  // After a click, move focus to the new page's heading so a screen reader starts there.
  if (moveFocus && !controller.signal.aborted) {
    const heading = main.querySelector('h1');
    heading?.setAttribute('tabindex', '-1');
    (heading ?? main).focus();
  }
}

function showSignIn(message) {
  leavePage();
  session = null;
  nav.hidden = true;
  who.hidden = true;
  document.title = 'Sign in · Ledger console';
  renderSignIn(main, { message, onSignedIn: signedIn });
}

function signedIn(newSession, { moveFocus = true } = {}) {
  session = newSession;
  document.getElementById('principal').textContent = `${session.principal} · ${session.access} access`;
  nav.hidden = false;
  who.hidden = false;
  route({ moveFocus });
}

// Links to console pages navigate in place (new tab, download etc. left to the browser).
document.addEventListener('click', (event) => {
  const link = event.target.closest?.('a[href]');
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey
    || event.shiftKey || event.altKey || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/console')
    || url.pathname.startsWith('/console/assets/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => route({ moveFocus: true }));

window.addEventListener('ledger:unauthorized', () => {
  token.clear();
  showSignIn('Your token was refused; sign in again');
});

document.getElementById('sign-out').addEventListener('click', () => {
  token.clear();
  showSignIn();
});

async function start() {
  try {
    const found = await resolveSession();
    if (found) signedIn(found, { moveFocus: false });
    else showSignIn();
  } catch (error) {
    main.replaceChildren(
      h('h1', {}, 'Ledger console'),
      errorBox(describe(error)),
      h('button', { type: 'button', onclick: start }, 'Try again'));
  }
}

start();
