// The end-to-end test: a real headless Chromium uses the example SPA behind tokengate,
// with the real test provider, the example API and the tokengate binary, all started on
// free loopback ports by the demo's own start-up code (scripts/stack.mjs).
//
// It logs in on the provider's login page, sees the SPA show the user, calls the API
// through the gateway, renews the session silently, follows a 401 back through login,
// logs out, and tries a silent renewal with no provider session left. Then it proves the
// browser never held a token: every response the browser received (status, headers and
// body, the provider's own included), every URL it asked for, its cookie jar,
// document.cookie, localStorage, sessionStorage and the page at each step are searched
// for the exact access, refresh and ID tokens the provider issued and for anything
// shaped like a JWT. Screenshots of each step are written to the output folder.
//
//   TOKENGATE_BIN  the tokengate binary (default: $CARGO_TARGET_DIR/debug/tokengate)
//   CHROMIUM       the browser (default /usr/bin/chromium)
//   E2E_OUTPUT     screenshots, the record of responses and the processes' logs
//                  (default tests/e2e/output)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { ROOT, startStack } from '../../scripts/stack.mjs';

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
 *  response (Set-Cookie and Cookie included) come from the Network domain. */
async function recordResponses(context, page) {
  const cdp = await context.newCDPSession(page);
  const responses = [];
  const rawHeaders = [];
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
  return { responses, rawHeaders };
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
  let responses;
  let rawHeaders;
  let shot = 0;

  const gw = (p = '/') => `${stack.url}${p}`;
  const onGateway = (url) => new URL(url).origin === stack.url;
  const onProvider = (url) => new URL(url).origin === new URL(stack.issuer).origin;
  const app = (state) => page.locator(`#app[data-state="${state}"]`).waitFor({ timeout: WAIT_MS });

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
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    ({ responses, rawHeaders } = await recordResponses(context, page));
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
    // Three logins: the first, the silent renewal, and the one after the 401.
    assert.equal(issued.length, 3, JSON.stringify(issued.map((t) => t.grant_type)));
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
