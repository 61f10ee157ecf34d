// tokengate client helper: copy this file into your single-page app.
//
// The browser holds no token. It holds one HttpOnly cookie that only tokengate can read,
// and talks to tokengate on its own origin. So the SPA needs three habits, all here:
//   1. every call carries `X-CSRF: 1` (tokengate refuses API calls without it: a custom
//      header forces a CORS preflight, which a cross-site page cannot pass);
//   2. a 401 means "no session", or with `step_up_required` "log in more strongly": send
//      the browser to /bff/login (for a step-up, the `login_url` tokengate gave), which
//      comes back to the current page once the user has logged in;
//   3. who is logged in comes from GET /bff/user, and logging out is a navigation to the
//      `logout_url` it gives.
// WebSockets (`bffSocket`) carry the cookie but no header: tokengate checks their Origin.

/** What GET /bff/user answers: the ID token's claims and facts about the session. */
export interface BffUser {
  claims: { sub: string; name?: string; email?: string; [claim: string]: unknown };
  session: { expires_at: number; created_at: number; logout_url: string };
}

/** `fetch` for your API behind tokengate. On 401 it sends the browser to log in (a
 *  step-up login when tokengate asks for one) and the returned promise never settles (the
 *  page is going away), so callers need no 401 case. */
export async function bffFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('X-CSRF', '1');
  const response = await fetch(input, { ...init, headers, credentials: 'same-origin' });
  if (response.status === 401) {
    const stepUp = await stepUpLogin(response);
    if (stepUp) location.assign(stepUp);
    else login();
    return new Promise<Response>(() => {});
  }
  return response;
}

/** A WebSocket to your API behind tokengate, on this page's origin (`wss:` under https).
 *  The route needs `websocket = true`; the browser sends the cookie and its Origin, and
 *  tokengate adds the access token. When the session ends, tokengate drops the connection
 *  (`close` with code 1006): call `getUser()` before reconnecting. */
export function bffSocket(path: string): WebSocket {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return new WebSocket(url);
}

/** The logged-in user, or `null` when there is no session (no redirect: you decide). */
export async function getUser(): Promise<BffUser | null> {
  const response = await fetch('/bff/user', { headers: { 'X-CSRF': '1' }, credentials: 'same-origin' });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`/bff/user answered ${response.status}`);
  return (await response.json()) as BffUser;
}

/** Log in through the provider, then come back to `returnUrl` (a path on this site). */
export function login(returnUrl = here()): void {
  location.assign(`/bff/login?returnUrl=${encodeURIComponent(returnUrl)}`);
}

/** Renew the session without showing the provider's pages, while the provider still has
 *  a session of its own. If it has not, the browser comes back to `returnUrl` with
 *  `?error=login_required` (see `takeLoginError`). */
export function renewSilently(returnUrl = here()): void {
  location.assign(`/bff/login?prompt=none&returnUrl=${encodeURIComponent(returnUrl)}`);
}

/** End the session at tokengate and at the provider. */
export function logout(user: BffUser): void {
  location.assign(user.session.logout_url);
}

/** The `error` a silent renewal came back with (`login_required`), removed from the
 *  address bar so a reload does not show it again; `null` when there is none. */
export function takeLoginError(): string | null {
  const url = new URL(location.href);
  const error = url.searchParams.get('error');
  if (error === null) return null;
  url.searchParams.delete('error');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  return error;
}

/** The `login_url` of a 401 `step_up_required` (the route wants a stronger or more recent
 *  login: its `acr_values`, `max_age`), made to come back to the current page; `null` for
 *  any other 401, and for a `login_url` that is not tokengate's own /bff/login. */
async function stepUpLogin(response: Response): Promise<string | null> {
  let body: { error?: unknown; login_url?: unknown };
  try {
    body = (await response.json()) as typeof body;
  } catch {
    return null;
  }
  if (body?.error !== 'step_up_required' || typeof body.login_url !== 'string') return null;
  const url = new URL(body.login_url, location.origin);
  if (url.origin !== location.origin || url.pathname !== '/bff/login') return null;
  url.searchParams.set('returnUrl', here());
  return url.pathname + url.search;
}

// The current page as a local path. Without the fragment: tokengate appends
// `?error=login_required` to the returnUrl, which must stay in the query.
function here(): string {
  return location.pathname + location.search;
}
