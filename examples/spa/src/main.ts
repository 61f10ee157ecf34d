// The example SPA: who is logged in, what the API receives through tokengate (and a
// step-up for a payment), a live feed over a WebSocket, silent renew and logout.
// Everything that talks to tokengate is in ./bff.ts.
import { type BffUser, bffFetch, bffSocket, getUser, login, logout, renewSilently, takeLoginError } from './bff.js';

type Child = Node | string | null | undefined | false;

/** A DOM element with attributes and children; text is always text, never HTML. */
function h(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  for (const child of children) if (child) el.append(child);
  return el;
}

function button(id: string, label: string, onClick: () => void, kind = 'primary'): HTMLElement {
  const el = h('button', { id, type: 'button', class: `btn ${kind}` }, label);
  el.addEventListener('click', onClick);
  return el;
}

const app = document.getElementById('app') as HTMLElement;
const status = document.getElementById('status') as HTMLElement;

const NOTICES: Record<string, string> = {
  login_required: 'Silent renewal needs a live session at the identity provider, and there is none: sign in again.',
  session_ended: 'Your session has ended (signed out in another tab, or expired): sign in again.',
};

function notice(error: string | null): HTMLElement | null {
  if (!error) return null;
  return h('p', { id: 'notice', class: 'notice', role: 'status' }, NOTICES[error] ?? `Sign-in did not complete: ${error}.`);
}

function setStatus(state: 'signed-in' | 'signed-out', label: string): void {
  status.dataset.state = state;
  status.textContent = label;
  app.dataset.state = state;
}

function signedOut(error: string | null): void {
  setStatus('signed-out', 'Signed out');
  app.replaceChildren(
    notice(error) ?? '',
    h('section', { class: 'card hero' },
      h('h2', {}, 'You are not signed in'),
      h('p', { class: 'muted' },
        'Sign in through the identity provider. tokengate keeps the tokens on the server; this page only ever gets a cookie it cannot read.'),
      h('div', { class: 'actions' },
        button('login', 'Sign in', () => login()),
        button('renew', 'Try silent sign-in', () => renewSilently(), 'secondary'))),
  );
}

function initials(name: string): string {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]?.toUpperCase() ?? '').join('') || '?';
}

function when(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleString();
}

const TIME_CLAIMS = new Set(['exp', 'iat', 'auth_time', 'nbf']);

function claimsTable(claims: Record<string, unknown>): HTMLElement {
  const rows = Object.entries(claims).map(([name, value]) => {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const shown = TIME_CLAIMS.has(name) && typeof value === 'number' ? `${text}  (${when(value)})` : text;
    return h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, shown));
  });
  return h('table', { id: 'claims', class: 'claims' }, h('tbody', {}, ...rows));
}

async function callApi(out: HTMLElement, path: string): Promise<void> {
  out.replaceChildren(h('p', { class: 'muted' }, `Calling GET ${path} …`));
  out.dataset.state = 'loading';
  try {
    const response = await bffFetch(path);
    const text = await response.text();
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // not JSON: show it as it came
    }
    out.replaceChildren(
      h('p', { class: response.ok ? 'ok' : 'err' }, `${response.status} ${response.statusText || ''}`.trim()),
      h('pre', { id: 'api-body' }, shown),
    );
    out.dataset.state = response.ok ? 'done' : 'failed';
  } catch (e) {
    out.replaceChildren(h('p', { class: 'err' }, `The call failed: ${(e as Error).message}`));
    out.dataset.state = 'failed';
  }
}

/** Newest first, at most this many lines in the feed. */
const FEED_LINES = 8;

/** The live feed: a WebSocket to the example API's /api/feed through tokengate, a tick
 *  every second and an echo of what is sent. tokengate drops the socket when the session
 *  ends; then /bff/user says whether to reconnect or to show the signed-out page. */
function liveFeed(): HTMLElement {
  const state = h('p', { id: 'feed-state', class: 'muted small' }, 'Connecting to /api/feed …');
  const lines = h('ul', { id: 'feed-log', class: 'feed' });
  const input = h('input', { id: 'feed-input', type: 'text', maxlength: '200', placeholder: 'Say something', 'aria-label': 'Message' }) as HTMLInputElement;
  const send = h('button', { id: 'feed-send', type: 'submit', class: 'btn secondary', disabled: '' }, 'Send') as HTMLButtonElement;
  const form = h('form', { class: 'feed-form' }, input, send);
  const card = h('section', { id: 'feed', class: 'card', 'data-state': 'connecting' },
    h('h3', {}, 'Live feed'),
    h('p', { class: 'muted small' }, 'A WebSocket to /api/feed: tokengate admits it by its origin and adds the access token.'),
    state, form, lines);

  const show = (kind: string, text: string): void => {
    lines.prepend(h('li', { class: kind }, text));
    while (lines.children.length > FEED_LINES) lines.lastElementChild?.remove();
  };
  const socket = bffSocket('/api/feed');
  socket.addEventListener('open', () => {
    card.dataset.state = 'open';
    state.textContent = 'Connected.';
    send.disabled = false;
  });
  socket.addEventListener('message', (event) => {
    const m = JSON.parse(String(event.data)) as { type: string; n?: number; text?: string; sub: string; at?: string };
    if (m.type === 'tick') show('tick', `tick ${m.n} · ${new Date(m.at ?? '').toLocaleTimeString()} · for ${m.sub}`);
    else if (m.type === 'echo') show('echo', `echo “${m.text}” · from ${m.sub}`);
  });
  socket.addEventListener('close', (event) => {
    card.dataset.state = 'closed';
    state.textContent = `Feed closed (code ${event.code}).`;
    send.disabled = true;
    void afterFeedClosed(card);
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (socket.readyState !== WebSocket.OPEN || !input.value) return;
    socket.send(input.value);
    input.value = '';
  });
  return card;
}

/** A closed feed: the session may be gone (logout in another tab, expiry). */
async function afterFeedClosed(card: HTMLElement): Promise<void> {
  try {
    if (!(await getUser())) return signedOut('session_ended');
  } catch {
    // tokengate did not answer: offer to reconnect all the same
  }
  card.querySelector('#feed-state')?.append(' ', button('feed-reconnect', 'Reconnect', () => card.replaceWith(liveFeed()), 'secondary'));
}

function signedIn(user: BffUser, error: string | null): void {
  const c = user.claims;
  const name = c.name ?? c.sub;
  setStatus('signed-in', 'Signed in');
  const apiOut = h('div', { id: 'api-result', 'data-state': 'idle' },
    h('p', { class: 'muted' }, 'Not called yet. The API checks the access token tokengate adds and answers with its claims — never the token itself.'),
    h('p', { class: 'muted small' }, '/api/payments also wants a sign-in with a second factor: without one, tokengate answers step_up_required and you sign in again with a one-time code.'));
  app.replaceChildren(
    notice(error) ?? '',
    h('section', { class: 'card user' },
      h('div', { class: 'avatar', 'aria-hidden': 'true' }, initials(name)),
      h('div', { class: 'who' },
        h('h2', { id: 'user-name' }, name),
        h('p', { class: 'muted' }, c.email ?? c.sub),
        h('p', { class: 'small muted', id: 'session-facts' },
          `Session since ${when(user.session.created_at)} · ends by ${when(user.session.expires_at)}`)),
      h('div', { class: 'actions' },
        button('renew', 'Renew silently', () => renewSilently(), 'secondary'),
        button('logout', 'Sign out', () => logout(user), 'secondary'))),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' },
        h('h3', {}, 'Your API, through tokengate'),
        h('div', { class: 'actions' },
          button('call-api', 'Call the API', () => void callApi(apiOut, '/api/hello')),
          button('call-payments', 'Make a payment', () => void callApi(apiOut, '/api/payments'), 'secondary'))),
      apiOut),
    liveFeed(),
    h('section', { class: 'card' },
      h('h3', {}, 'ID token claims'),
      h('p', { class: 'muted small' }, 'From GET /bff/user: the claims, never the token.'),
      claimsTable(c)),
  );
}

async function start(): Promise<void> {
  const error = takeLoginError();
  try {
    const user = await getUser();
    if (user) signedIn(user, error);
    else signedOut(error);
  } catch (e) {
    setStatus('signed-out', 'Unavailable');
    app.replaceChildren(h('p', { class: 'notice err' }, `tokengate did not answer: ${(e as Error).message}`));
  }
}

void start();
