// The end-to-end test: a real headless Chromium uses the example SPA behind tokengate,
// with the real test provider, the example API and the tokengate binary, all started on
// free loopback ports by the demo's own start-up code (scripts/stack.mjs).
//
// It logs in on the provider's login page, sees the SPA show the user, calls the API
// through the gateway, uses the live feed (a WebSocket through the gateway to the API),
// sees a page on another origin refused that WebSocket, logs out in a second tab and sees
// the first tab's feed closed within a second, makes a payment that asks for a step-up to
// a second factor, renews the session silently, follows a 401 back through login, logs
// out, and tries a silent renewal with no provider session left.
// Then it proves the browser never held a token: every response the browser received
// (status, headers and body, the provider's own included), every WebSocket frame, every
// URL it asked for, its cookie jar, document.cookie, localStorage, sessionStorage and the
// page at each step are searched for the exact access, refresh and ID tokens the provider
// issued and for anything shaped like a JWT. Screenshots of each step are written to the
// output folder.
//
//   TOKENGATE_BIN  the tokengate binary (default: $CARGO_TARGET_DIR/debug/tokengate)
//   CHROMIUM       the browser (default /usr/bin/chromium)
//   E2E_OUTPUT     screenshots, the record of responses and the processes' logs
//                  (default tests/e2e/output)
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { ROOT, readAddresses, startStack } from '../../scripts/stack.mjs';

const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/tokengate/target');
const BIN = process.env.TOKENGATE_BIN ?? path.join(TARGET, 'debug', 'tokengate');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const OUT = path.resolve(process.env.E2E_OUTPUT ?? path.join(ROOT, 'tests/e2e/output'));
/** The longest any single wait may take. */
const WAIT_MS = 20000;
/** Three dot-separated base64url parts starting with `{"` encoded: a JWT (JWS), or the
 *  first three parts of a JWE. */
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/;

// === What the browser held ===============================================================

/** Everything the browser received or held, as text, each with where it came from. */
const held = [];
let step = 'start';

function hold(where, text) {
  // `where` names a URL, which may itself be the leak: keep it short in a failure message.
  const short = where.length > 140 ? `${where.slice(0, 140)}…` : where;
  held.push({ step, where: short, text: `${where}\n${text ?? ''}` });
}

/** Records every response the page receives, inside Chromium's network stack (the CDP
 *  Fetch domain, paused at the response stage), so that no body is missed: not even that
 *  of a page that navigates away at once, like the provider's self-submitting logout.
 *  The Fetch domain shows no cookie headers, so the raw headers of every request and
 *  response (Set-Cookie and Cookie included) come from the Network domain, and so do
 *  WebSocket handshakes and frames, which the Fetch domain does not see. A second page
 *  adds to the `record` of the first. */
async function recordResponses(context, page, record = { responses: [], rawHeaders: [], frames: [] }) {
  const cdp = await context.newCDPSession(page);
  const { responses, rawHeaders, frames } = record;
  const frame = (direction) => (ev) => {
    frames.push({ step, direction, payload: ev.response.payloadData });
    hold(`WebSocket frame ${direction} (${step})`, ev.response.payloadData);
  };
  cdp.on('Network.webSocketFrameReceived', frame('received'));
  cdp.on('Network.webSocketFrameSent', frame('sent'));
  cdp.on('Network.webSocketWillSendHandshakeRequest', (ev) => {
    hold(`WebSocket handshake request (${step})`, JSON.stringify(ev.request));
  });
  cdp.on('Network.webSocketHandshakeResponseReceived', (ev) => {
    hold(`WebSocket handshake response (${step})`, JSON.stringify(ev.response));
  });
  cdp.on('Network.responseReceivedExtraInfo', (ev) => {
    rawHeaders.push({ step, headers: ev.headers });
    hold(`raw response headers (${step})`, `${JSON.stringify(ev.headers)}\n${ev.headersText ?? ''}`);
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (ev) => {
    hold(`raw request headers (${step})`, JSON.stringify(ev.headers));
  });
  await cdp.send('Network.enable');
  cdp.on('Fetch.requestPaused', async (ev) => {
    const { requestId, request, responseStatusCode: status, responseHeaders = [], responseErrorReason } = ev;
    const headers = responseHeaders.map((h) => `${h.name}: ${h.value}`).join('\n');
    const entry = { step, method: request.method, url: request.url, status, type: ev.resourceType, headers, body: '' };
    responses.push(entry);
    try {
      const redirect = status >= 300 && status < 400 && responseHeaders.some((h) => h.name.toLowerCase() === 'location');
      if (!responseErrorReason && !redirect) {
        const { body, base64Encoded } = await cdp.send('Fetch.getResponseBody', { requestId });
        entry.body = base64Encoded ? Buffer.from(body, 'base64').toString('latin1') : body;
      }
    } catch (err) {
      entry.bodyError = err.message;
    } finally {
      await cdp.send('Fetch.continueRequest', { requestId }).catch(() => {});
    }
    hold(`request ${request.method} ${request.url}`, `${request.url}\n${JSON.stringify(request.headers)}\n${request.postData ?? ''}`);
    hold(`response ${status} ${request.url}`, `${headers}\n\n${entry.body}`);
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*', requestStage: 'Response' }] });
  return record;
}

/** Put in every page before its own scripts: each WebSocket the page opens is recorded in
 *  `window.sockets` with when it opened and closed, on a clock that all tabs share
 *  (performance.timeOrigin + performance.now(), in ms), its close code and what it
 *  received. */
function recordSockets() {
  const Native = window.WebSocket;
  const now = () => performance.timeOrigin + performance.now();
  window.sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const socket = { url: String(args[0]), opened: null, closed: null, code: null, error: false, received: [] };
      window.sockets.push(socket);
      this.addEventListener('open', () => { socket.opened = now(); });
      this.addEventListener('error', () => { socket.error = true; });
      this.addEventListener('message', (ev) => socket.received.push(String(ev.data)));
      this.addEventListener('close', (ev) => {
        socket.closed = now();
        socket.code = ev.code;
      });
    }
  };
}

/** The gateway's answer to a WebSocket upgrade request sent from Node, with headers a
 *  browser would not let a page set: `{ status }` for a 101 (the connection is then
 *  dropped), `{ status, body }` otherwise. */
function upgrade(url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`no answer to the upgrade of ${url}`)));
    req.on('error', reject);
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.end();
  });
}

/** The page and storage as they are now: HTML, document.cookie, both storages, and the
 *  whole cookie jar (HttpOnly cookies included: the browser holds those too). */
async function snapshot(context, page) {
  const state = await page.evaluate(() => ({
    url: location.href,
    html: document.documentElement.outerHTML,
    cookie: document.cookie,
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
  }));
  hold(`url at ${step}`, state.url);
  hold(`html at ${step}`, state.html);
  hold(`document.cookie at ${step}`, state.cookie);
  hold(`localStorage at ${step}`, state.local);
  hold(`sessionStorage at ${step}`, state.session);
  hold(`cookie jar at ${step}`, JSON.stringify(await context.cookies()));
  return state;
}

// === The test ============================================================================

describe('the example SPA in Chromium, behind tokengate', { timeout: 180000 }, () => {
  let stack;
  let browser;
  let context;
  let page;
  let record;
  let responses;
  let rawHeaders;
  let shot = 0;

  const gw = (p = '/') => `${stack.url}${p}`;
  const onGateway = (url) => new URL(url).origin === stack.url;
  const onProvider = (url) => new URL(url).origin === new URL(stack.issuer).origin;
  const app = (state) => page.locator(`#app[data-state="${state}"]`).waitFor({ timeout: WAIT_MS });
  const wsUrl = (p) => `${stack.url.replace(/^http/, 'ws')}${p}`;

  /** The newest WebSocket to the live feed that `p` opened (see recordSockets). */
  const feedSocket = (p) => p.evaluate((url) => window.sockets.filter((s) => s.url === url).at(-1) ?? null, wsUrl('/api/feed'));

  /** Another tab in the same browser (same cookies), recorded like the first. It stays
   *  open until the end: closed, it could take with it a response (its favicon) whose body
   *  the record has not read yet. */
  async function newTab() {
    const tab = await context.newPage();
    tab.setDefaultTimeout(WAIT_MS);
    tab.setDefaultNavigationTimeout(WAIT_MS);
    await recordResponses(context, tab, record);
    return tab;
  }

  /** Ends a step: screenshot, then a snapshot of the page and storage. */
  async function done(name) {
    shot += 1;
    await page.screenshot({ path: path.join(OUT, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
    return snapshot(context, page);
  }

  const sessionCookie = async () => (await context.cookies(stack.url)).find((c) => c.name === 'tokengate' || c.name === '__Host-Http-tokengate');

  before(async () => {
    fs.rmSync(OUT, { recursive: true, force: true });
    fs.mkdirSync(path.join(OUT, 'stack'), { recursive: true });
    assert.ok(fs.existsSync(BIN), `no tokengate binary at ${BIN} (cargo build first, or set TOKENGATE_BIN)`);
    assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
    stack = await startStack({ bin: BIN, logDir: path.join(OUT, 'stack') });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Without the background-networking flags Chromium keeps trying to reach Google's
      // services; here there is nothing to reach.
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
      ],
    });
    context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    await context.addInitScript(recordSockets);
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    record = await recordResponses(context, page);
    ({ responses, rawHeaders } = record);
  });

  after(async () => {
    if (page && !page.isClosed()) await page.screenshot({ path: path.join(OUT, 'last.png'), fullPage: true }).catch(() => {});
    fs.writeFileSync(path.join(OUT, 'responses.json'), JSON.stringify(responses ?? [], null, 2));
    await browser?.close();
    await stack?.stop();
  });

  test('a visitor without a session sees the signed-out SPA', async () => {
    step = 'signed-out';
    await page.goto(gw('/'));
    await app('signed-out');
    assert.equal(await page.locator('#status').textContent(), 'Signed out');
    await done('signed-out');
  });

  test('Sign in leads to the provider\'s login page', async () => {
    step = 'provider-login';
    await page.click('#login');
    await page.waitForURL((url) => onProvider(url) && url.pathname.startsWith('/interaction/'));
    await page.locator('#login').waitFor();
    await done('provider-login');
  });

  test('after logging in there, the SPA shows the user and the ID token claims', async () => {
    step = 'signed-in';
    await page.fill('#login', 'alice');
    await page.fill('#password', 'alice-password');
    await page.click('button[type=submit]');
    await app('signed-in');
    assert.ok(onGateway(page.url()), page.url());
    assert.equal(await page.locator('#user-name').textContent(), 'Alice Example');
    const claims = await page.locator('#claims').textContent();
    assert.match(claims, /alice@example\.test/);
    const cookie = await sessionCookie();
    assert.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(cookie.sameSite, 'Strict');
    await done('signed-in');
  });

  test('Call the API shows what the API received: claims, no cookie', async () => {
    step = 'api-called';
    await page.click('#call-api');
    await page.locator('#api-result[data-state="done"]').waitFor();
    const answer = JSON.parse(await page.locator('#api-body').textContent());
    assert.equal(answer.token_claims.sub, 'alice');
    assert.equal(answer.token_claims.iss, stack.issuer);
    assert.equal(answer.request.path, '/api/hello');
    assert.equal(answer.cookies_received, null, 'the gateway strips its cookie; the provider\'s never come here');
    assert.equal(answer.forwarded.host, new URL(stack.url).host);
    await done('api-called');
  });

  test('the live feed: ticks from the API through the gateway, and a message comes back as an echo', async () => {
    step = 'feed';
    await page.locator('#feed[data-state="open"]').waitFor();
    await page.locator('#feed-log li.tick').nth(1).waitFor();
    await page.fill('#feed-input', 'hello through tokengate');
    await page.click('#feed-send');
    await page.locator('#feed-log li.echo').waitFor();
    assert.match(await page.locator('#feed-log li.echo').textContent(), /hello through tokengate.*alice/);

    const feed = await feedSocket(page);
    assert.ok(feed?.opened && !feed.closed, JSON.stringify(feed));
    const messages = feed.received.map((m) => JSON.parse(m));
    const ticks = messages.filter((m) => m.type === 'tick');
    assert.ok(ticks.length >= 2, JSON.stringify(messages));
    assert.deepEqual(ticks.map((m) => m.n), ticks.map((_, i) => i + 1), 'a tick a second, none lost');
    // The API verified the bearer token that the gateway added to the upgrade request:
    // its frames carry the token's subject (and never the token).
    assert.ok(ticks.every((m) => m.sub === 'alice'), JSON.stringify(ticks));
    assert.deepEqual(messages.find((m) => m.type === 'echo'), { type: 'echo', text: 'hello through tokengate', sub: 'alice' });
    await done('feed');
  });

  test('a page on another origin cannot open the feed: its upgrade is refused with 403', async () => {
    step = 'feed-foreign-origin';
    // The API's own origin: the same host as the gateway on another port, so the same site
    // and the browser sends the session cookie along (SameSite does not separate ports);
    // only the Origin check stands between such a page and the user's session.
    const foreign = new URL(readAddresses(fs.readFileSync(stack.config, 'utf8')).api).origin;
    const tab = await newTab();
    // The page is not told the status; Chromium's network log is.
    const cdp = await context.newCDPSession(tab);
    const failures = [];
    cdp.on('Network.webSocketFrameError', (ev) => failures.push(ev.errorMessage));
    await cdp.send('Network.enable');
    await tab.goto(`${foreign}/`);
    const attempt = await tab.evaluate((url) => new Promise((resolve) => {
      new WebSocket(url).addEventListener('close', () => resolve({ origin: location.origin, socket: window.sockets.at(-1) }));
    }), wsUrl('/api/feed'));
    assert.equal(attempt.origin, foreign);
    const { opened, error, code, received } = attempt.socket;
    assert.deepEqual({ opened, error, code, received }, { opened: null, error: true, code: 1006, received: [] }, 'it failed without opening');
    assert.deepEqual(failures, ['Error during WebSocket handshake: Unexpected response code: 403']);

    // The same at the HTTP level, with the user's live session cookie: a foreign Origin gets
    // 403, the gateway's own origin 101.
    const cookie = await sessionCookie();
    const headers = { cookie: `${cookie.name}=${cookie.value}` };
    const refused = await upgrade(`${stack.url}/api/feed`, { ...headers, origin: foreign });
    assert.equal(refused.status, 403, JSON.stringify(refused));
    assert.equal(typeof JSON.parse(refused.body).error, 'string', refused.body);
    assert.equal((await upgrade(`${stack.url}/api/feed`, { ...headers, origin: stack.url })).status, 101);
  });

  test('logging out in another tab closes the first tab\'s feed within a second', async () => {
    step = 'feed-closed';
    const feed = await feedSocket(page);
    assert.ok(feed?.opened && !feed.closed, 'the first tab\'s feed is open');
    const tab = await newTab();
    await tab.goto(gw('/'));
    await tab.locator('#feed[data-state="open"]').waitFor();
    // POST /bff/logout as a SPA without the provider's logout page would send it: the
    // gateway ends the session and answers with the redirect to the provider, which is
    // not followed (the provider's session lives on, for signing in again below).
    const logout = await tab.evaluate(async () => {
      const now = () => performance.timeOrigin + performance.now();
      const sent = now();
      const response = await fetch('/bff/logout', { method: 'POST', headers: { 'X-CSRF': '1' }, redirect: 'manual' });
      return { sent, answered: now(), type: response.type };
    });
    assert.equal(logout.type, 'opaqueredirect');
    // Polled, but the time is the close event's own (recordSockets).
    const closed = await (await page.waitForFunction((url) => {
      const socket = window.sockets.filter((s) => s.url === url).at(-1);
      return socket?.closed != null && socket;
    }, wsUrl('/api/feed'), { polling: 20, timeout: WAIT_MS })).jsonValue();
    const latency = closed.closed - logout.answered;
    console.log(`# feed closed ${latency.toFixed(1)} ms after the logout response (${(closed.closed - logout.sent).toFixed(1)} ms after the request)`);
    assert.ok(latency <= 1000, `the feed closed ${latency} ms after the logout response`);
    // No close frame: the gateway drops the connection, which the page sees as 1006.
    assert.equal(closed.code, 1006);
    // The SPA asks /bff/user why, and shows that the session has ended.
    await app('signed-out');
    assert.match(await page.locator('#notice').textContent(), /session has ended/);
    await tab.locator('#app[data-state="signed-out"]').waitFor();
    await done('feed-closed');
  });

  test('Sign in after that comes straight back: the provider\'s session lives on', async () => {
    step = 'signed-in-again';
    await page.click('#login');
    await app('signed-in');
    assert.equal(await page.locator('#user-name').textContent(), 'Alice Example');
    await done('signed-in-again');
  });

  test('a payment asks for a second factor: step-up at the provider, then back to the same page', async () => {
    step = 'step-up';
    await page.goto(gw('/?view=payments'));
    await app('signed-in');
    // The API answers with an RFC 9470 challenge, which the gateway turns into 401
    // step_up_required; the client helper follows its login_url, with this page as
    // returnUrl.
    const login = page.waitForRequest((r) => r.url().startsWith(gw('/bff/login')));
    await page.click('#call-payments');
    const loginUrl = new URL((await login).url());
    assert.equal(loginUrl.searchParams.get('acr_values'), 'urn:tokengate:mfa');
    assert.equal(loginUrl.searchParams.get('returnUrl'), '/?view=payments');
    // The provider's session is a password one: its form asks again, with a one-time code.
    await page.waitForURL((url) => onProvider(url) && url.pathname.startsWith('/interaction/'));
    await page.fill('#login', 'alice');
    await page.fill('#password', 'alice-password');
    await page.fill('#code', '123456');
    await page.click('button[type=submit]');
    await page.waitForURL(gw('/?view=payments'));
    await app('signed-in');
    await page.click('#call-payments');
    await page.locator('#api-result[data-state="done"]').waitFor();
    const answer = JSON.parse(await page.locator('#api-body').textContent());
    assert.equal(answer.request.path, '/api/payments');
    assert.equal(answer.token_claims.acr, 'urn:tokengate:mfa');

    const challenge = responses.find((r) => r.step === step && r.url.startsWith(gw('/api/payments')) && r.status === 401);
    const body = JSON.parse(challenge.body);
    assert.equal(body.error, 'step_up_required', challenge.body);
    assert.ok(body.login_url.startsWith('/bff/login?'), body.login_url);
    await done('step-up');
  });

  test('silent renew gives a new session without showing the provider', async () => {
    step = 'silent-renew';
    const before = (await sessionCookie()).value;
    const from = responses.length;
    const callback = page.waitForResponse((r) => r.url().startsWith(gw('/bff/callback')));
    await page.click('#renew');
    assert.equal((await callback).status(), 302);
    await app('signed-in');
    assert.equal(await page.locator('#user-name').textContent(), 'Alice Example');
    const after = (await sessionCookie()).value;
    assert.notEqual(after, before, 'a renewal is a new session with a new ID');
    const shown = responses.slice(from).filter((r) => onProvider(r.url) && r.url.includes('/interaction/'));
    assert.deepEqual(shown.map((r) => r.url), [], 'no provider page during a silent renewal');
    await done('silent-renew');
  });

  test('a 401 from the API sends the browser through login and back to the same page', async () => {
    step = 'after-401';
    await page.goto(gw('/?view=expired'));
    await app('signed-in');
    // The session ends behind the SPA's back (as when it expires): the API answers 401
    // and the client helper sends the browser to /bff/login?returnUrl=<this page>. The
    // provider's session still lives, so the browser comes straight back.
    await context.clearCookies({ name: (await sessionCookie()).name });
    const login = page.waitForRequest((r) => r.url().startsWith(gw('/bff/login')));
    await page.click('#call-api');
    const loginUrl = new URL((await login).url());
    assert.equal(loginUrl.searchParams.get('returnUrl'), '/?view=expired');
    await page.waitForURL(gw('/?view=expired'));
    await app('signed-in');
    await done('after-401');
  });

  test('Sign out ends both sessions and lands on the signed-out SPA', async () => {
    step = 'signed-out-again';
    const stats = async () => (await fetch(`${stack.issuer}/test/stats`)).json();
    const ended = (await stats()).end_sessions;
    await page.click('#logout');
    await page.waitForURL(gw('/'));
    await app('signed-out');
    assert.equal(await sessionCookie(), undefined, 'the session cookie is gone');
    assert.equal((await stats()).end_sessions, ended + 1, 'the provider ended its session too');
    await done('signed-out-again');
  });

  test('silent renew without a provider session comes back with login_required', async () => {
    step = 'login-required';
    const callback = page.waitForResponse((r) => r.url().startsWith(gw('/bff/callback')));
    await page.click('#renew');
    assert.equal(new URL((await callback).headers().location, stack.url).searchParams.get('error'), 'login_required');
    await page.locator('#notice').waitFor();
    await app('signed-out');
    assert.match(await page.locator('#notice').textContent(), /sign in again/);
    assert.equal(new URL(page.url()).search, '', 'the SPA took the error out of the address bar');
    await done('login-required');
  });

  test('the browser never held a token', async () => {
    step = 'proof';
    const issued = await (await fetch(`${stack.issuer}/test/issued`)).json();
    // Five logins: the first, the one after the logout in another tab, the step-up, the
    // silent renewal, and the one after the 401.
    assert.equal(issued.length, 5, JSON.stringify(issued.map((t) => t.grant_type)));
    const tokens = issued.flatMap((t) => [
      ['access token', t.access_token],
      ['ID token', t.id_token],
      ['refresh token', t.refresh_token],
    ]).filter(([, value]) => value);
    assert.ok(tokens.some(([what]) => what === 'refresh token'), 'the first login got a refresh token (offline_access)');
    for (const [what, value] of tokens) {
      assert.ok(value.length >= 20, `${what} is real`);
      if (what !== 'refresh token') assert.match(value, JWT_SHAPE, `the JWT pattern finds the real ${what}`);
    }

    // The record covers what it must: the provider's pages, the gateway's redirects and
    // JSON, the API's answer; and no body went unread.
    const seen = (pred, what) => assert.ok(responses.some(pred), `the record has ${what}`);
    seen((r) => onProvider(r.url) && r.url.includes('/interaction/') && r.body.includes('id="password"'), 'the provider\'s login form');
    seen((r) => onProvider(r.url) && r.body.includes('id="op-logout"'), 'the provider\'s logout page');
    seen((r) => r.url.startsWith(gw('/bff/callback')) && r.status === 302, 'the callback redirect');
    seen((r) => r.url.startsWith(gw('/bff/user')) && r.body.includes('"claims"'), '/bff/user');
    seen((r) => r.url.startsWith(gw('/api/hello')) && r.body.includes('token_claims'), 'the API\'s answer');
    seen((r) => r.url.startsWith(gw('/bff/logout')) && r.status === 302, 'the logout redirect');
    assert.ok(record.frames.some((f) => f.direction === 'received' && f.payload.includes('"type":"echo"')), 'the record has the feed\'s frames');
    assert.deepEqual(responses.filter((r) => r.bodyError).map((r) => `${r.url}: ${r.bodyError}`), [], 'every body was read');
    const setCookies = rawHeaders.flatMap((r) => Object.entries(r.headers))
      .filter(([name]) => name.toLowerCase() === 'set-cookie').map(([, value]) => value).join('\n');
    assert.match(setCookies, /^tokengate=/m, 'the record has the session cookie being set');
    assert.match(setCookies, /^_session=/m, 'the record has the provider\'s cookies being set');

    const leaks = [];
    for (const { step: at, where, text } of held) {
      for (const [what, value] of tokens) if (text.includes(value)) leaks.push(`${what} in ${where} (${at})`);
      const jwt = text.match(JWT_SHAPE);
      if (jwt) leaks.push(`a JWT ${jwt[0].slice(0, 24)}… in ${where} (${at})`);
    }
    assert.deepEqual(leaks, [], 'nothing the browser received or held contains a token');
    console.log(`# searched ${held.length} records (${responses.length} responses) for ${tokens.length} tokens: none found`);
  });
});
