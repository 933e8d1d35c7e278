// Who is using the console. `GET /v1/session` says which principal a token is and what
// it may do; the console offers admin actions only when it says `admin` (the API
// refuses them anyway, this only spares offering what would fail).

import { api, describe, token } from './api.js';
import { h, errorBox } from './dom.js';

/**
 * The session, or null when a sign-in is needed. Without a stored token it first asks
 * without one: a ledger run with --insecure-no-auth answers an anonymous admin.
 */
export async function resolveSession() {
  try {
    return await api('/v1/session', { quiet401: true });
  } catch (error) {
    if (error.status !== 401) throw error;
    token.clear();
    return null;
  }
}

/** Draws the sign-in form into `main`; `onSignedIn(session)` once a token is accepted. */
export function renderSignIn(main, { message, onSignedIn }) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'sign-in', novalidate: true },
    h('label', { for: 'token' }, 'API token'),
    input,
    button,
    status);
  if (message) status.append(errorBox(message));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      status.replaceChildren(errorBox('Enter an API token'));
      input.focus();
      return;
    }
    button.disabled = true;
    status.replaceChildren(h('p', { class: 'loading' }, 'Signing in…'));
    token.set(value);
    try {
      const session = await api('/v1/session', { quiet401: true });
      onSignedIn(session);
    } catch (error) {
      token.clear();
      status.replaceChildren(errorBox(error.status === 401 ? 'That token was refused' : describe(error)));
      button.disabled = false;
      input.select();
      input.focus();
    }
  });

  main.replaceChildren(
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Use a ledger API token. It is kept in this tab only and forgotten when the tab closes.'),
    form);
  input.focus();
}
