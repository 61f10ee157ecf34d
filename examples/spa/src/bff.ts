// tokengate client helper: copy this file into your single-page app.
//
// The browser holds no token. It holds one HttpOnly cookie that only tokengate can read,
// and talks to tokengate on its own origin. So the SPA needs three habits, all here:
//   1. every call carries `X-CSRF: 1` (tokengate refuses API calls without it: a custom
//      header forces a CORS preflight, which a cross-site page cannot pass);
//   2. a 401 means "no session": send the browser to /bff/login, which comes back to the
//      current page once the user has logged in;
//   3. who is logged in comes from GET /bff/user, and logging out is a navigation to the
//      `logout_url` it gives.

/** What GET /bff/user answers: the ID token's claims and facts about the session. */
export interface BffUser {
  claims: { sub: string; name?: string; email?: string; [claim: string]: unknown };
  session: { expires_at: number; created_at: number; logout_url: string };
}

/** `fetch` for your API behind tokengate. On 401 it sends the browser to log in and the
 *  returned promise never settles (the page is going away), so callers need no 401 case. */
export async function bffFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('X-CSRF', '1');
  const response = await fetch(input, { ...init, headers, credentials: 'same-origin' });
  if (response.status === 401) {
    login();
    return new Promise<Response>(() => {});
  }
  return response;
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

// The current page as a local path. Without the fragment: tokengate appends
// `?error=login_required` to the returnUrl, which must stay in the query.
function here(): string {
  return location.pathname + location.search;
}
