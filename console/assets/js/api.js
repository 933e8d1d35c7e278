// The one way the console talks to the ledger: same-origin fetch with the bearer token,
// problem+json errors turned into ApiProblem, and the two "wait and try again" answers
// (a read model catching up, the ledger briefly unavailable) retried in one place so no
// page has to.

const TOKEN_KEY = 'ledger.token';

// Session storage only: the token dies with the tab and is never sent by the browser on
// its own (no cookie), so another site cannot make requests with it.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiProblem extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
    this.title = problem.title;
    this.detail = problem.detail;
    this.problem = problem;
  }
}

export const isAbort = (error) => error?.name === 'AbortError';

/**
 * GET (or `method`) `path` with `query` (undefined values left out); resolves to the
 * parsed JSON body, rejects with ApiProblem. A 401 also tells the app (`ledger:unauthorized`)
 * unless `quiet401`, so the sign-in form comes back wherever it happened.
 */
export async function api(path, { method = 'GET', query, signal, quiet401 = false } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  const headers = { accept: 'application/json' };
  const bearer = token.get();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(url, { method, headers, signal });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiProblem(0, { title: 'The ledger cannot be reached', detail: error.message });
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { detail: text }; }
  if (response.ok) return body;
  const problem = new ApiProblem(response.status, body ?? {});
  if (response.status === 401 && !quiet401) window.dispatchEvent(new CustomEvent('ledger:unauthorized'));
  throw problem;
}

const lagging = (error) => error?.status === 504 && error.code === 'projection_lagging';
const retryable = (error) => lagging(error) || error?.status === 503;

/** What to tell a person about a failed request. */
export function describe(error, { notFound } = {}) {
  if (lagging(error)) return 'The read model is catching up';
  if (error?.status === 503) return 'The ledger is unavailable right now (retrying)';
  if (error?.status === 404 && notFound) return notFound;
  if (error instanceof ApiProblem) {
    return [error.title, error.detail].filter(Boolean).join(': ') || `Request failed (HTTP ${error.status})`;
  }
  return String(error?.message ?? error);
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason ?? new DOMException('aborted', 'AbortError')); }, { once: true });
});

/**
 * `request()` until it answers something other than "catching up" / "unavailable";
 * `onWait(message)` is told each time it waits (once a second, for about a minute).
 */
export async function withRetry(request, { signal, onWait } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await request();
    } catch (error) {
      if (isAbort(error) || !retryable(error) || attempt >= 60) throw error;
      onWait?.(describe(error));
      await sleep(1000, signal);
    }
  }
}

/** The query parameters of a point in time: an event's position or a wall-clock time. */
export const cutQuery = (point) =>
  (point.mode === 'event' ? { at_position: point.position } : { as_of: point.asOf });
