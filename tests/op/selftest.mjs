// Self-test of the test OpenID Provider (server.mjs), with nothing but Node.js: starts it
// as a child process, plays the gateway and the browser against it over HTTP, and checks
// the behaviour tokengate's integration tests rely on. Run: node tests/op/selftest.mjs
// Exits 1 when a check fails; prints how long the provider takes to get ready.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.mjs');
const REDIRECT_URI = 'http://127.0.0.1:1/bff/callback';
const POST_LOGOUT_URI = 'http://127.0.0.1:1/';
const CLIENT_ID = 'gateway';
const CLIENT_SECRET = 'gateway-secret';
const AUDIENCE = 'https://api.tokengate.test';
const OTHER_AUDIENCE = 'https://other.example';
const SCOPE = 'openid profile email offline_access api';
// What the gateway asks for by default.
const GATEWAY_SCOPE = 'openid profile email offline_access';
const ACR_PASSWORD = 'urn:tokengate:password';
const ACR_MFA = 'urn:tokengate:mfa';
const MFA_CODE = '123456';

// === Checks ============================================================================

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok      ${name}`);
  } else {
    failed++;
    console.log(`FAILED  ${name}${detail === undefined ? '' : `\n        ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
  return ok;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// === The provider as a child process ===================================================

const startTimes = [];

async function startOp(extraEnv = {}) {
  const began = performance.now();
  const child = spawn(process.execPath, [SERVER], {
    env: {
      PATH: process.env.PATH,
      OP_REDIRECT_URIS: REDIRECT_URI,
      OP_POST_LOGOUT_REDIRECT_URIS: POST_LOGOUT_URI,
      OP_ACCESS_TOKEN_TTL: '5',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let stdout = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  // A provider that never gets ready is ended, not left running after the self-test.
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider not ready after 30 s\n${stderr}`)), 30000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(stdout.slice(0, nl)));
        } catch (err) {
          reject(new Error(`bad ready line ${JSON.stringify(stdout)}: ${err.message}`));
        }
      }
    });
    exited.then(({ code }) => reject(new Error(`provider exited (${code}) before it was ready\n${stderr}`)));
  }).catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  const ms = performance.now() - began;
  startTimes.push(ms);
  return {
    child,
    ready,
    issuer: ready.issuer,
    port: ready.port,
    ms,
    exited,
    extraStdout: () => stdout.slice(stdout.indexOf('\n') + 1),
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      child.kill(signal);
      return exited;
    },
  };
}

// === HTTP as a browser and as the gateway ==============================================

class Browser {
  constructor() {
    this.jar = new Map();
  }

  async get(url, init = {}) {
    return this.request(url, { ...init, method: 'GET' });
  }

  async post(url, form) {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  async request(url, init) {
    const headers = { accept: 'text/html', ...init.headers };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = !value || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))
        || attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
      if (gone) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    const body = await res.text();
    return { status: res.status, location: res.headers.get('location'), body, headers: res.headers, url };
  }

  // Follows redirects from `url` until a page answers, or a Location leaves for `stopAt`.
  async follow(url, stopAt = REDIRECT_URI) {
    let res = await this.get(url);
    const hops = [url];
    for (let i = 0; i < 20 && res.location; i++) {
      const next = new URL(res.location, res.url).href;
      hops.push(next);
      if (next.startsWith(stopAt)) return { ...res, final: next, hops };
      res = await this.get(next);
    }
    return { ...res, final: undefined, hops };
  }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const decodeJwt = (jwt) => {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
};

async function verifyJwt(op, jwt) {
  const jwks = await (await fetch(`${op.issuer}/jwks`)).json();
  const { header } = decodeJwt(jwt);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== 'RS256') return false;
  const [h, p, s] = jwt.split('.');
  return crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
}

// The token endpoint with client_secret_basic (or _post).
async function token(op, params, auth = 'basic') {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const body = new URLSearchParams(params);
  if (auth === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`;
  } else {
    body.set('client_id', CLIENT_ID);
    body.set('client_secret', CLIENT_SECRET);
  }
  const res = await fetch(`${op.issuer}/token`, { method: 'POST', headers, body });
  return { status: res.status, json: await res.json() };
}

const refresh = (op, refreshToken, extra = {}, auth = 'basic') => token(op, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra }, auth);

async function clientPost(op, endpoint, params) {
  const res = await fetch(`${op.issuer}${endpoint}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
    },
    body: new URLSearchParams(params),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const getJson = async (url, init) => (await fetch(url, init)).json();

function authUrl(op, extra = {}) {
  const verifier = b64url(crypto.randomBytes(32));
  const params = {
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    prompt: 'consent',
    state: b64url(crypto.randomBytes(12)),
    nonce: b64url(crypto.randomBytes(12)),
    code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) if (v === undefined) delete params[k];
  return { url: `${op.issuer}/auth?${new URLSearchParams(params)}`, verifier, params };
}

const formAction = (html) => html.match(/<form[^>]*action="([^"]+)"/)?.[1];
const hasCodeField = (html) => /<input id="code" name="code"/.test(html);

// The whole login as the gateway and a browser do it. Returns the callback's parameters.
// `code`: the one-time code, typed when the form has a code field.
async function login(op, browser, { user = 'alice', password = `${user}-password`, code, ...extra } = {}) {
  const auth = authUrl(op, extra);
  const page = await browser.follow(auth.url);
  if (page.final) return { auth, callback: new URL(page.final).searchParams, form: null };
  const action = formAction(page.body);
  if (!action) throw new Error(`no login form: ${page.status} ${page.body.slice(0, 300)}`);
  const fields = { login: user, password };
  if (code !== undefined && hasCodeField(page.body)) fields.code = code;
  const posted = await browser.post(new URL(action, op.issuer).href, fields);
  let next = posted.location && new URL(posted.location, op.issuer).href;
  const done = next && (next.startsWith(REDIRECT_URI) ? { final: next } : await browser.follow(next));
  if (!done?.final) throw new Error(`login did not come back: ${posted.status} ${posted.body.slice(0, 300)}`);
  return { auth, callback: new URL(done.final).searchParams, form: page };
}

const redeem = (op, auth, code, how = 'basic') => token(op, {
  grant_type: 'authorization_code',
  code,
  redirect_uri: REDIRECT_URI,
  code_verifier: auth.verifier,
}, how);

// === The tests =========================================================================

async function mainFlow() {
  const backchannel = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      backchannel.push(Object.fromEntries(new URLSearchParams(body)));
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const op = await startOp({ OP_BACKCHANNEL_LOGOUT_URI: `http://127.0.0.1:${receiver.address().port}/bff/backchannel` });
  try {
    check('ready line names the issuer and port', op.issuer === `http://127.0.0.1:${op.port}` && op.ready.ready === true, op.ready);

    const discovery = await getJson(`${op.issuer}/.well-known/openid-configuration`);
    check('discovery: issuer', discovery.issuer === op.issuer, discovery.issuer);
    check('discovery: iss in authorization responses (RFC 9207)', discovery.authorization_response_iss_parameter_supported === true);
    check('discovery: PKCE S256 only', JSON.stringify(discovery.code_challenge_methods_supported) === '["S256"]');
    check('discovery: revocation, introspection, end_session endpoints', Boolean(discovery.revocation_endpoint && discovery.introspection_endpoint && discovery.end_session_endpoint));
    check('discovery: back-channel logout', discovery.backchannel_logout_supported === true && discovery.backchannel_logout_session_supported === true);

    // PKCE is required.
    const noPkce = await new Browser().get(authUrl(op, { code_challenge: undefined, code_challenge_method: undefined }).url);
    const noPkceTo = noPkce.location ? new URL(noPkce.location) : undefined;
    check('no code_challenge: invalid_request back at the client', noPkceTo?.href.startsWith(REDIRECT_URI) && noPkceTo.searchParams.get('error') === 'invalid_request', noPkce.location);

    // --- The code flow, step by step.
    const browser = new Browser();
    const auth = authUrl(op);
    const formPage = await browser.follow(auth.url);
    const action = formAction(formPage.body);
    check('login form after redirects', formPage.status === 200 && /^\/interaction\/[^/]+\/login$/.test(action || ''), { status: formPage.status, action });
    check('login form has inputs login and password', /name="login"/.test(formPage.body) && /name="password"/.test(formPage.body));
    check('login page title names the tokengate test provider', /<title>[^<]*tokengate test provider[^<]*<\/title>/.test(formPage.body));

    const wrong = await browser.post(new URL(action, op.issuer).href, { login: 'alice', password: 'nope' });
    check('wrong password: the form again with "Invalid login"', wrong.status === 200 && wrong.body.includes('Invalid login') && formAction(wrong.body) === action, wrong.status);

    const posted = await browser.post(new URL(action, op.issuer).href, { login: 'alice', password: 'alice-password' });
    check('right password: redirect', posted.status === 303 || posted.status === 302, posted.status);
    const back = await browser.follow(new URL(posted.location, op.issuer).href);
    const cb = back.final && new URL(back.final).searchParams;
    check('back at the redirect URI (consent granted without a page)', Boolean(cb), back.hops);
    check('callback carries code, state and iss', cb?.get('code') && cb.get('state') === auth.params.state && cb.get('iss') === op.issuer, back.final);

    const tokens = await redeem(op, auth, cb.get('code'));
    check('code redeemed with client_secret_basic', tokens.status === 200, tokens.json);
    const t = tokens.json;
    check('token response: id_token, refresh_token, Bearer, expires_in 5', Boolean(t.id_token && t.refresh_token) && t.token_type === 'Bearer' && t.expires_in === 5, { ...t, access_token: '…', id_token: '…' });
    check('token response scope is the access token\'s: api', t.scope === 'api', t.scope);
    const id = decodeJwt(t.id_token).payload;
    check('ID token: sub, nonce, profile and email claims', id.sub === 'alice' && id.nonce === auth.params.nonce && id.name === 'Alice Example'
      && id.given_name === 'Alice' && id.family_name === 'Example' && id.preferred_username === 'alice'
      && id.email === 'alice@example.test' && id.email_verified === true && id.aud === CLIENT_ID, id);
    check('ID token carries sid (back-channel logout)', typeof id.sid === 'string', id);
    const at = decodeJwt(t.access_token);
    check('access token is a JWT with kid, RS256, typ at+jwt', typeof at.header.kid === 'string' && at.header.alg === 'RS256' && at.header.typ === 'at+jwt', at.header);
    check('access token: aud, iss, sub, client_id, scope', at.payload.aud === AUDIENCE && at.payload.iss === op.issuer && at.payload.sub === 'alice'
      && at.payload.client_id === CLIENT_ID && at.payload.scope === 'api', at.payload);
    check('access token: exp - iat == OP_ACCESS_TOKEN_TTL', at.payload.exp - at.payload.iat === 5, at.payload);
    check('access token signature verifies with the JWKS', await verifyJwt(op, t.access_token));
    const issued = await getJson(`${op.issuer}/test/issued`);
    check('/test/issued lists the token response', issued.length === 1 && issued[0].grant_type === 'authorization_code' && issued[0].access_token === t.access_token
      && issued[0].refresh_token === t.refresh_token && issued[0].id_token === t.id_token, issued.map((i) => i.grant_type));
    const introspected = await clientPost(op, '/token/introspection', { token: t.refresh_token });
    check('introspection: the refresh token is active', introspected.json?.active === true && introspected.json.sub === 'alice', introspected.json);

    // --- prompt=none with the provider session: no form.
    const silent = authUrl(op, { prompt: 'none' });
    const silentRes = await browser.follow(silent.url);
    const silentCb = silentRes.final && new URL(silentRes.final).searchParams;
    check('prompt=none with a session: straight back with a code', Boolean(silentCb?.get('code')) && silentRes.hops.length === 2, silentRes.hops);
    const silentTokens = await redeem(op, silent, silentCb.get('code'));
    const silentAt = silentTokens.json.access_token && decodeJwt(silentTokens.json.access_token).payload;
    check('prompt=none tokens: JWT for the API audience', silentTokens.status === 200 && silentAt?.aud === AUDIENCE && silentAt.scope === 'api', silentTokens.json);
    check('prompt=none drops offline_access: no refresh token', silentTokens.json.refresh_token === undefined && !silentTokens.json.scope.includes('offline_access'), silentTokens.json.scope);
    const noSession = await new Browser().follow(authUrl(op, { prompt: 'none' }).url);
    check('prompt=none without a session: login_required', noSession.final && new URL(noSession.final).searchParams.get('error') === 'login_required', noSession.final);

    // --- Refresh: rotation and replay detection.
    const before = await getJson(`${op.issuer}/test/stats`);
    const r1 = await refresh(op, t.refresh_token);
    check('refresh 1 works', r1.status === 200 && r1.json.refresh_token && r1.json.refresh_token !== t.refresh_token, r1.json);
    const at1 = decodeJwt(r1.json.access_token).payload;
    check('refresh 1: JWT for the API audience, exp - iat == 5', at1.aud === AUDIENCE && at1.exp - at1.iat === 5 && at1.scope === 'api' && at1.jti !== at.payload.jti, at1);
    check('refresh response includes an ID token', typeof r1.json.id_token === 'string');
    const r2 = await refresh(op, r1.json.refresh_token);
    check('refresh 2 with the new refresh token works', r2.status === 200 && r2.json.refresh_token, r2.json);
    let stats = await getJson(`${op.issuer}/test/stats`);
    check('stats: two refresh grants', stats.grants.refresh_token === before.grants.refresh_token + 2 && stats.grants.refresh_token === 2, stats);
    check('stats: two code grants, no errors yet', stats.grants.authorization_code === 2 && JSON.stringify(stats.grant_errors) === '{}', stats);
    const replay = await refresh(op, t.refresh_token);
    check('replayed refresh token: invalid_grant', replay.status === 400 && replay.json.error === 'invalid_grant', replay.json);
    console.log(`        (replay answer: ${JSON.stringify(replay.json)})`);
    const afterReplay = await refresh(op, r2.json.refresh_token);
    check('after a replay the whole grant is revoked: the latest one is refused too', afterReplay.status === 400 && afterReplay.json.error === 'invalid_grant', afterReplay.json);
    stats = await getJson(`${op.issuer}/test/stats`);
    const afterReplaySilent = await browser.follow(authUrl(op, { prompt: 'none' }).url);
    check('the replay also destroyed the grant: prompt=none now gives consent_required', new URL(afterReplaySilent.final).searchParams.get('error') === 'consent_required', afterReplaySilent.final);
    check('stats: refresh grant errors counted, successes unchanged', stats.grant_errors.refresh_token === 2 && stats.grants.refresh_token === 2, stats);

    // --- A second login with the live session: consent again, granted at once.
    const second = await login(op, browser);
    check('login with a live session and prompt=consent: no form', second.form === null && second.callback.get('code'), second.callback.toString());
    const t2 = (await redeem(op, second.auth, second.callback.get('code'))).json;
    check('... and a new refresh token', Boolean(t2.refresh_token), t2);

    // --- Another audience for a route.
    const other = await refresh(op, t2.refresh_token, { resource: OTHER_AUDIENCE });
    const otherAt = other.json.access_token && decodeJwt(other.json.access_token).payload;
    check('refresh with resource=https://other.example: JWT with that aud', other.status === 200 && otherAt?.aud === OTHER_AUDIENCE && otherAt.scope === 'api' && otherAt.exp - otherAt.iat === 5, other.json);
    const back2 = await refresh(op, other.json.refresh_token);
    const back2At = back2.json.access_token && decodeJwt(back2.json.access_token).payload;
    check('refresh without resource: the API audience again', back2.status === 200 && back2At?.aud === AUDIENCE, back2.json);

    // --- Client credentials.
    const cc = await token(op, { grant_type: 'client_credentials', resource: OTHER_AUDIENCE, scope: 'api' });
    const ccAt = cc.json.access_token && decodeJwt(cc.json.access_token);
    check('client_credentials with resource: JWT with that aud', cc.status === 200 && ccAt?.payload.aud === OTHER_AUDIENCE && ccAt.payload.client_id === CLIENT_ID
      && ccAt.payload.exp - ccAt.payload.iat === 5 && typeof ccAt.header.kid === 'string' && await verifyJwt(op, cc.json.access_token), cc.json);
    const ccDefault = await token(op, { grant_type: 'client_credentials' });
    const ccDefaultAt = ccDefault.json.access_token && decodeJwt(ccDefault.json.access_token).payload;
    check('client_credentials without resource: the API audience', ccDefault.status === 200 && ccDefaultAt?.aud === AUDIENCE, ccDefault.json);

    // --- Revocation (RFC 7009).
    const revoked = await clientPost(op, '/token/revocation', { token: back2.json.refresh_token, token_type_hint: 'refresh_token' });
    check('revocation answers 200', revoked.status === 200, revoked);
    const revocations = await getJson(`${op.issuer}/test/revocations`);
    check('/test/revocations lists the token and its hint', revocations.length === 1 && revocations[0].token === back2.json.refresh_token && revocations[0].token_type_hint === 'refresh_token', revocations);
    const afterRevoke = await refresh(op, back2.json.refresh_token);
    check('revoked refresh token: invalid_grant', afterRevoke.status === 400 && afterRevoke.json.error === 'invalid_grant', afterRevoke.json);
    stats = await getJson(`${op.issuer}/test/stats`);
    check('stats: one revocation', stats.revocations === 1, stats);

    // A refused resource still uses up a rotating refresh token (oidc-provider rotates it
    // before it looks at the resource).
    const burn = await login(op, browser);
    const tb = (await redeem(op, burn.auth, burn.callback.get('code'))).json;
    const badResource = await refresh(op, tb.refresh_token, { resource: 'http://plain.example' });
    check('refresh with a non-https resource: invalid_target', badResource.status === 400 && badResource.json.error === 'invalid_target', badResource.json);
    const burnt = await refresh(op, tb.refresh_token);
    check('... and that refresh token is used up: invalid_grant', burnt.status === 400 && burnt.json.error === 'invalid_grant', burnt.json);

    // --- /test/revoke-refresh.
    const third = await login(op, browser);
    const t3 = (await redeem(op, third.auth, third.callback.get('code'))).json;
    const forced = await getJson(`${op.issuer}/test/revoke-refresh?sub=alice`, { method: 'POST' });
    check('/test/revoke-refresh counts what it destroyed', forced.revoked >= 1, forced);
    const afterForced = await refresh(op, t3.refresh_token);
    check('... and the refresh token is refused: invalid_grant', afterForced.status === 400 && afterForced.json.error === 'invalid_grant', afterForced.json);

    // --- Bob, and no leaks between users.
    const bobBrowser = new Browser();
    const bob = await login(op, bobBrowser, { user: 'bob' });
    const bobTokens = (await redeem(op, bob.auth, bob.callback.get('code'))).json;
    check('bob logs in', decodeJwt(bobTokens.id_token).payload.email === 'bob@example.test' && decodeJwt(bobTokens.access_token).payload.sub === 'bob');

    // --- RP-initiated logout, with back-channel logout.
    const fourth = await login(op, browser);
    const t4 = (await redeem(op, fourth.auth, fourth.callback.get('code'))).json;
    const endUrl = `${discovery.end_session_endpoint}?${new URLSearchParams({ id_token_hint: t4.id_token, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'bye' })}`;
    const logoutPage = await browser.get(endUrl);
    const logoutForm = logoutPage.body.match(/<form[^>]*id="op-logout"[^>]*>[\s\S]*?<\/form>/)?.[0];
    check('logout page: a form with id="op-logout"', logoutPage.status === 200 && Boolean(logoutForm), logoutPage.body.slice(0, 400));
    check('logout page submits itself', /getElementById\('op-logout'\)\.submit\(\)/.test(logoutPage.body));
    const logoutAction = formAction(logoutForm);
    const inputs = Object.fromEntries([...logoutForm.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    check('logout form posts xsrf and logout=yes', inputs.logout === 'yes' && Boolean(inputs.xsrf) && /\/session\/end\/confirm$/.test(logoutAction), { logoutAction, inputs });
    const confirmed = await browser.post(new URL(logoutAction, op.issuer).href, inputs);
    const to = confirmed.location && new URL(confirmed.location);
    check('logout confirmed: redirect to post_logout_redirect_uri with state', confirmed.status === 303 && to?.href.startsWith(POST_LOGOUT_URI) && to.searchParams.get('state') === 'bye', confirmed.location);
    for (let i = 0; i < 50 && backchannel.length === 0; i++) await sleep(20);
    const logoutToken = backchannel[0]?.logout_token && decodeJwt(backchannel[0].logout_token).payload;
    check('back-channel logout token delivered, with the sid', logoutToken?.sub === 'alice' && logoutToken.sid === decodeJwt(t4.id_token).payload.sid
      && Boolean(logoutToken.events?.['http://schemas.openid.net/event/backchannel-logout']), backchannel);
    stats = await getJson(`${op.issuer}/test/stats`);
    check('stats: one end_session, one back-channel logout', stats.end_sessions === 1 && stats.backchannel_logouts === 1, stats);
    const afterLogout = await browser.follow(authUrl(op, { prompt: 'none' }).url);
    check('after logout prompt=none gives login_required', afterLogout.final && new URL(afterLogout.final).searchParams.get('error') === 'login_required', afterLogout.final);
    const noSessionLogout = await new Browser().get(`${discovery.end_session_endpoint}?${new URLSearchParams({ client_id: CLIENT_ID, post_logout_redirect_uri: POST_LOGOUT_URI })}`);
    check('logout without a provider session: still a form with id="op-logout"', noSessionLogout.status === 200 && /<form id="op-logout" method="post"/.test(noSessionLogout.body), noSessionLogout.body.slice(0, 600));

    // --- Refused interactions.
    const stale = await new Browser().get(`${op.issuer}/interaction/unknown-uid`);
    check('unknown interaction: 400 page', stale.status === 400 && stale.body.includes('expired'), stale.status);

    const statsShape = await getJson(`${op.issuer}/test/stats`);
    console.log(`        (stats: ${JSON.stringify(statsShape)})`);
    check('stdout holds only the ready line', op.extraStdout() === '', op.extraStdout());
    if (failed) console.log(`        provider stderr:\n${op.stderr()}`);
    const exit = await op.stop('SIGTERM');
    check('SIGTERM: exit code 0', exit.code === 0, exit);
  } finally {
    op.child.kill('SIGKILL');
    receiver.close();
  }
}

async function scopesWithoutApi() {
  const op = await startOp();
  try {
    const res = await login(op, new Browser(), { scope: 'openid profile email offline_access' });
    const t = (await redeem(op, res.auth, res.callback.get('code'))).json;
    const at = decodeJwt(t.access_token).payload;
    check('without scope api: still a JWT for the API audience, but no scope claim', at.aud === AUDIENCE && at.scope === undefined && Boolean(t.refresh_token), { at, scope: t.scope });
    const noPrompt = await login(op, new Browser(), { prompt: undefined });
    const t2 = (await redeem(op, noPrompt.auth, noPrompt.callback.get('code'))).json;
    check('no prompt parameter: offline_access dropped, no refresh token', t2.refresh_token === undefined, t2.scope);
    const promptLogin = await login(op, new Browser(), { prompt: 'login' });
    const t3 = (await redeem(op, promptLogin.auth, promptLogin.callback.get('code'))).json;
    check('prompt=login without consent: offline_access dropped, no refresh token', t3.refresh_token === undefined, t3.scope);

    // A code is one-time; presenting it again revokes what it gave.
    const once = await login(op, new Browser());
    const first = await redeem(op, once.auth, once.callback.get('code'));
    const again = await redeem(op, once.auth, once.callback.get('code'));
    check('code used twice: invalid_grant', again.status === 400 && again.json.error === 'invalid_grant', again.json);
    const afterCodeReplay = await refresh(op, first.json.refresh_token);
    check('... and the refresh token of its first use is revoked', afterCodeReplay.status === 400 && afterCodeReplay.json.error === 'invalid_grant', afterCodeReplay.json);
  } finally {
    await op.stop();
  }
}

async function postAuthWithoutRotation() {
  const op = await startOp({ OP_CLIENT_AUTH: 'client_secret_post', OP_ROTATE_REFRESH: '0' });
  try {
    const res = await login(op, new Browser());
    const basic = await redeem(op, res.auth, res.callback.get('code'), 'basic');
    check('client_secret_post client: basic auth refused (invalid_client)', basic.status === 401 && basic.json.error === 'invalid_client', basic.json);
    const res2 = await login(op, new Browser());
    const t = await redeem(op, res2.auth, res2.callback.get('code'), 'post');
    check('client_secret_post: code redeemed', t.status === 200 && Boolean(t.json.refresh_token), t.json);
    const r1 = await refresh(op, t.json.refresh_token, {}, 'post');
    const r2 = await refresh(op, t.json.refresh_token, {}, 'post');
    check('OP_ROTATE_REFRESH=0: the same refresh token works twice', r1.status === 200 && r2.status === 200 && (r1.json.refresh_token ?? t.json.refresh_token) === t.json.refresh_token, { r1: r1.json, r2: r2.json });
    let stats = await getJson(`${op.issuer}/test/stats`);
    check('stats: 2 refresh grants, no refresh errors', stats.grants.refresh_token === 2 && stats.grant_errors.refresh_token === undefined, stats);
    const basicRefresh = await refresh(op, t.json.refresh_token, {}, 'basic');
    check('client_secret_post client: basic auth refused at refresh too', basicRefresh.status === 401 && basicRefresh.json.error === 'invalid_client', basicRefresh.json);
    const basicRevoke = await clientPost(op, '/token/revocation', { token: t.json.refresh_token });
    check('... and at revocation', basicRevoke.status === 401, basicRevoke);
    stats = await getJson(`${op.issuer}/test/stats`);
    check('stats: the refused token requests are grant errors', stats.grant_errors.refresh_token === 1 && stats.grant_errors.authorization_code === 1 && stats.revocations === 0, stats);
    const r3 = await refresh(op, t.json.refresh_token, {}, 'post');
    check('the refresh token still works with client_secret_post', r3.status === 200, r3.json);
  } finally {
    await op.stop();
  }
}

async function restartWithState() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'op-state-'));
  let op = await startOp({ OP_STATE_DIR: dir });
  const { port } = op;
  try {
    const browser = new Browser();
    const res = await login(op, browser);
    const t = (await redeem(op, res.auth, res.callback.get('code'))).json;
    const kid = decodeJwt(t.access_token).header.kid;
    await postJson(`${op.issuer}/test/claims?sub=alice`, { tenant: 'globex' });
    const exit = await op.stop('SIGTERM');
    check('state dir: stopped with SIGTERM', exit.code === 0, exit);

    op = await startOp({ OP_STATE_DIR: dir, OP_PORT: String(port) });
    check('restart on the same port and issuer', op.port === port, op.ready);
    const r1 = await refresh(op, t.refresh_token);
    check('after a restart the refresh token still works', r1.status === 200 && Boolean(r1.json.refresh_token), r1.json);
    const at = decodeJwt(r1.json.access_token);
    check('... signed with the same key, verifiable', at.header.kid === kid && await verifyJwt(op, r1.json.access_token), at.header);
    const r1Id = decodeJwt(r1.json.id_token).payload;
    check('... and claims changed by /test/claims are kept', r1Id.tenant === 'globex' && sameList(r1Id.groups, ['staff', 'admins']), r1Id);
    const silent = await browser.follow(authUrl(op, { prompt: 'none' }).url);
    check('... and the provider session survived (prompt=none)', Boolean(silent.final && new URL(silent.final).searchParams.get('code')), silent.final);

    // The Rust harness kills the process outright: nothing may be lost then either.
    await op.stop('SIGKILL');
    op = await startOp({ OP_STATE_DIR: dir, OP_PORT: String(port) });
    const r2 = await refresh(op, r1.json.refresh_token);
    check('after SIGKILL and a restart the rotated refresh token works', r2.status === 200, r2.json);
    const replay = await refresh(op, t.refresh_token);
    check('... and the consumed one is still known as used (invalid_grant)', replay.status === 400 && replay.json.error === 'invalid_grant', replay.json);
  } finally {
    await op.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function localhostIssuer() {
  const op = await startOp({ OP_HOST: 'localhost' });
  try {
    check('OP_HOST=localhost: the issuer names localhost', op.issuer === `http://localhost:${op.port}`, op.ready);
    const discovery = await getJson(`${op.issuer}/.well-known/openid-configuration`);
    check('... and so does discovery', discovery.issuer === op.issuer && discovery.authorization_endpoint.startsWith(op.issuer), discovery.issuer);
    const res = await login(op, new Browser());
    check('... and a login works through it', res.callback.get('iss') === op.issuer && Boolean(res.callback.get('code')), res.callback.toString());
  } finally {
    await op.stop();
  }
}

const postJson = async (url, body) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
};

async function userinfo(op, accessToken) {
  const res = await fetch(`${op.issuer}/me`, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, wwwAuthenticate: res.headers.get('www-authenticate') };
}

const sameList = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Claims the gateway's per-route rules look at (groups, tenant), and POST /test/claims.
async function claims() {
  const op = await startOp();
  try {
    const discovery = await getJson(`${op.issuer}/.well-known/openid-configuration`);
    check('discovery: claims_supported has groups and tenant', discovery.claims_supported.includes('groups') && discovery.claims_supported.includes('tenant'), discovery.claims_supported);

    const res = await login(op, new Browser(), { scope: GATEWAY_SCOPE });
    const t = (await redeem(op, res.auth, res.callback.get('code'))).json;
    const id = decodeJwt(t.id_token).payload;
    check('ID token (gateway scopes): groups staff, admins and tenant acme', sameList(id.groups, ['staff', 'admins']) && id.tenant === 'acme', id);
    const bobRes = await login(op, new Browser(), { user: 'bob', scope: GATEWAY_SCOPE });
    const bobId = decodeJwt((await redeem(op, bobRes.auth, bobRes.callback.get('code'))).json.id_token).payload;
    check('bob: groups staff, tenant acme', sameList(bobId.groups, ['staff']) && bobId.tenant === 'acme', bobId);
    const emailOnly = await login(op, new Browser(), { scope: 'openid email offline_access' });
    const emailOnlyId = decodeJwt((await redeem(op, emailOnly.auth, emailOnly.callback.get('code'))).json.id_token).payload;
    check('without scope profile: no groups or tenant', emailOnlyId.groups === undefined && emailOnlyId.tenant === undefined && emailOnlyId.email === 'alice@example.test', emailOnlyId);

    const changed = await postJson(`${op.issuer}/test/claims?sub=alice`, { groups: ['staff'], tenant: null, department: 'sales' });
    check('/test/claims: 200 with the merged claims', changed.status === 200 && changed.json.sub === 'alice' && sameList(changed.json.groups, ['staff'])
      && !('tenant' in changed.json) && changed.json.department === 'sales' && changed.json.email === 'alice@example.test', changed);
    const r1 = await refresh(op, t.refresh_token);
    const r1Id = r1.json.id_token && decodeJwt(r1.json.id_token).payload;
    check('after /test/claims a refresh gives an ID token with the new groups, tenant removed', r1.status === 200 && sameList(r1Id?.groups, ['staff']) && r1Id.tenant === undefined
      && r1Id.name === 'Alice Example' && r1Id.sub === 'alice', r1Id ?? r1.json);
    check('... a claim outside the scopes\' claims is not released', r1Id && !('department' in r1Id), r1Id);
    const bobAgain = await login(op, new Browser(), { user: 'bob', scope: GATEWAY_SCOPE });
    const bobAgainId = decodeJwt((await redeem(op, bobAgain.auth, bobAgain.callback.get('code'))).json.id_token).payload;
    check('... and bob is untouched', sameList(bobAgainId.groups, ['staff']) && bobAgainId.tenant === 'acme', bobAgainId);
    const restored = await postJson(`${op.issuer}/test/claims?sub=alice`, { groups: ['staff', 'admins'], tenant: 'acme' });
    const r2 = await refresh(op, r1.json.refresh_token);
    const r2Id = decodeJwt(r2.json.id_token).payload;
    check('/test/claims again: the next refresh carries those', restored.status === 200 && sameList(r2Id.groups, ['staff', 'admins']) && r2Id.tenant === 'acme', r2Id);

    const noSub = await postJson(`${op.issuer}/test/claims`, { groups: [] });
    const unknown = await postJson(`${op.issuer}/test/claims?sub=mallory`, { groups: [] });
    const notObject = await postJson(`${op.issuer}/test/claims?sub=alice`, ['admins']);
    const notJson = await postJson(`${op.issuer}/test/claims?sub=alice`, 'groups=admins');
    check('/test/claims refuses: no sub 400, unknown user 404, a body not a JSON object 400', noSub.status === 400 && unknown.status === 404 && notObject.status === 400 && notJson.status === 400,
      [noSub.status, unknown.status, notObject.status, notJson.status]);
  } finally {
    await op.stop();
  }
}

// acr_values and max_age: the one-time code, the re-prompt of a weaker session.
async function stepUp() {
  const op = await startOp();
  try {
    const discovery = await getJson(`${op.issuer}/.well-known/openid-configuration`);
    check('discovery: acr_values_supported password and mfa', sameList(discovery.acr_values_supported, [ACR_PASSWORD, ACR_MFA]), discovery.acr_values_supported);

    // A plain login.
    const browser = new Browser();
    const plainPage = await browser.follow(authUrl(op, { scope: GATEWAY_SCOPE }).url);
    check('plain login form: no one-time code field', formAction(plainPage.body) && !/name="code"/.test(plainPage.body), plainPage.body.slice(0, 300));
    const plain = await login(op, browser, { scope: GATEWAY_SCOPE });
    const pt = (await redeem(op, plain.auth, plain.callback.get('code'))).json;
    const pid = decodeJwt(pt.id_token).payload;
    const now = Math.floor(Date.now() / 1000);
    check('plain login: acr password, amr [pwd], auth_time', pid.acr === ACR_PASSWORD && sameList(pid.amr, ['pwd']) && Number.isInteger(pid.auth_time) && Math.abs(pid.auth_time - now) < 10, pid);
    const pr = await refresh(op, pt.refresh_token);
    const prid = decodeJwt(pr.json.id_token).payload;
    check('... and the refresh\'s ID token: the same acr, amr, auth_time', prid.acr === ACR_PASSWORD && sameList(prid.amr, ['pwd']) && prid.auth_time === pid.auth_time, prid);

    // The same session asked for mfa: the form again, with a code field.
    const stepAuth = authUrl(op, { scope: GATEWAY_SCOPE, acr_values: ACR_MFA });
    const stepPage = await browser.follow(stepAuth.url);
    const stepAction = formAction(stepPage.body);
    check('password session asked for acr mfa: the login form again (no silent answer)', !stepPage.final && Boolean(stepAction), stepPage.final ?? stepPage.status);
    check('... with <input id="code" name="code"> and the code in the hint', hasCodeField(stepPage.body) && stepPage.body.includes(`<code>${MFA_CODE}</code>`), stepPage.body);
    const stepUrl = new URL(stepAction, op.issuer).href;
    const wrongCode = await browser.post(stepUrl, { login: 'alice', password: 'alice-password', code: '654321' });
    check('wrong code: the form again with an error and the code field', wrongCode.status === 200 && wrongCode.body.includes('Invalid one-time code') && hasCodeField(wrongCode.body) && formAction(wrongCode.body) === stepAction, wrongCode.status);
    const noCode = await browser.post(stepUrl, { login: 'alice', password: 'alice-password', code: '' });
    check('no code when only mfa is asked for: the form again', noCode.status === 200 && noCode.body.includes('One-time code required') && hasCodeField(noCode.body), noCode.status);
    const wrongPassword = await browser.post(stepUrl, { login: 'alice', password: 'nope', code: MFA_CODE });
    check('wrong password with the right code: Invalid login, code field kept', wrongPassword.status === 200 && wrongPassword.body.includes('Invalid login') && hasCodeField(wrongPassword.body), wrongPassword.status);
    const rightCode = await browser.post(stepUrl, { login: 'alice', password: 'alice-password', code: MFA_CODE });
    const stepBack = rightCode.location && await browser.follow(new URL(rightCode.location, op.issuer).href);
    const stepCb = stepBack?.final && new URL(stepBack.final).searchParams;
    check('right code: back at the client with a code', Boolean(stepCb?.get('code')), rightCode.status);
    const mt = (await redeem(op, stepAuth, stepCb.get('code'))).json;
    const mid = decodeJwt(mt.id_token).payload;
    check('mfa login: acr mfa, amr [pwd, otp], a new auth_time', mid.acr === ACR_MFA && sameList(mid.amr, ['pwd', 'otp']) && mid.auth_time >= pid.auth_time && mid.sub === 'alice', mid);
    const mr = await refresh(op, mt.refresh_token);
    const mrid = decodeJwt(mr.json.id_token).payload;
    check('... and the refresh\'s ID token: acr mfa, amr, auth_time kept', mr.status === 200 && mrid.acr === ACR_MFA && sameList(mrid.amr, ['pwd', 'otp']) && mrid.auth_time === mid.auth_time, mrid);
    const again = await login(op, browser, { scope: GATEWAY_SCOPE, acr_values: ACR_MFA });
    const aid = decodeJwt((await redeem(op, again.auth, again.callback.get('code'))).json.id_token).payload;
    check('mfa session asked for mfa again: no form, acr mfa', again.form === null && aid.acr === ACR_MFA, { form: again.form !== null, aid });
    const plainAgain = await login(op, browser, { scope: GATEWAY_SCOPE });
    const paid = decodeJwt((await redeem(op, plainAgain.auth, plainAgain.callback.get('code'))).json.id_token).payload;
    check('mfa session, no acr_values: no form, acr mfa', plainAgain.form === null && paid.acr === ACR_MFA, paid);

    // prompt=none cannot step up.
    const pwBrowser = new Browser();
    await login(op, pwBrowser, { scope: GATEWAY_SCOPE });
    const silent = await pwBrowser.follow(authUrl(op, { scope: GATEWAY_SCOPE, prompt: 'none', acr_values: ACR_MFA }).url);
    check('password session, prompt=none, acr_values mfa: login_required', silent.final && new URL(silent.final).searchParams.get('error') === 'login_required', silent.final);
    const either = await login(op, pwBrowser, { scope: GATEWAY_SCOPE, acr_values: `${ACR_PASSWORD} ${ACR_MFA}` });
    const eid = decodeJwt((await redeem(op, either.auth, either.callback.get('code'))).json.id_token).payload;
    check('password session, acr_values "password mfa": no form, acr password', either.form === null && eid.acr === ACR_PASSWORD, eid);
    const eitherFresh = await login(op, new Browser(), { scope: GATEWAY_SCOPE, acr_values: `${ACR_PASSWORD} ${ACR_MFA}`, code: '' });
    const efid = decodeJwt((await redeem(op, eitherFresh.auth, eitherFresh.callback.get('code'))).json.id_token).payload;
    check('acr_values "password mfa", no code typed: acr password', hasCodeField(eitherFresh.form.body) && efid.acr === ACR_PASSWORD && sameList(efid.amr, ['pwd']), efid);
    const fresh = await login(op, new Browser(), { user: 'bob', scope: GATEWAY_SCOPE, acr_values: ACR_MFA, code: MFA_CODE });
    const fid = decodeJwt((await redeem(op, fresh.auth, fresh.callback.get('code'))).json.id_token).payload;
    check('no session, acr_values mfa: one form with the code, acr mfa', fresh.form !== null && fid.acr === ACR_MFA && fid.sub === 'bob', fid);
    const unknownAcr = await login(op, pwBrowser, { scope: GATEWAY_SCOPE, acr_values: 'urn:example:unknown' });
    const uid = decodeJwt((await redeem(op, unknownAcr.auth, unknownAcr.callback.get('code'))).json.id_token).payload;
    check('acr_values naming no supported value: no form, the session\'s acr', unknownAcr.form === null && uid.acr === ACR_PASSWORD, uid);

    // max_age (oidc-provider's own): an older session logs in again.
    const recent = await login(op, pwBrowser, { scope: GATEWAY_SCOPE, max_age: '3600' });
    const rid = decodeJwt((await redeem(op, recent.auth, recent.callback.get('code'))).json.id_token).payload;
    check('max_age=3600 with a fresh session: no form, auth_time in the ID token', recent.form === null && Number.isInteger(rid.auth_time), rid);
    await sleep(2100);
    const old = await login(op, pwBrowser, { scope: GATEWAY_SCOPE, max_age: '1' });
    const oid = decodeJwt((await redeem(op, old.auth, old.callback.get('code'))).json.id_token).payload;
    check('max_age=1 with an older session: the form again, a newer auth_time', old.form !== null && oid.auth_time > rid.auth_time && oid.acr === ACR_PASSWORD, { form: old.form !== null, oid, before: rid.auth_time });
  } finally {
    await op.stop();
  }
}

// OP_USERINFO_CLAIMS=1: claims at userinfo, not in the ID token.
async function userinfoClaims() {
  const op = await startOp({ OP_USERINFO_CLAIMS: '1' });
  try {
    const discovery = await getJson(`${op.issuer}/.well-known/openid-configuration`);
    check('OP_USERINFO_CLAIMS: discovery names the userinfo endpoint', discovery.userinfo_endpoint === `${op.issuer}/me`, discovery.userinfo_endpoint);
    const res = await login(op, new Browser(), { scope: GATEWAY_SCOPE });
    const t = (await redeem(op, res.auth, res.callback.get('code'))).json;
    const id = decodeJwt(t.id_token).payload;
    const released = ['name', 'given_name', 'family_name', 'preferred_username', 'groups', 'tenant', 'email', 'email_verified'];
    check('... ID token: sub, acr, amr, auth_time, nonce; none of the profile, email, groups, tenant claims', id.sub === 'alice' && id.acr === ACR_PASSWORD && sameList(id.amr, ['pwd'])
      && Number.isInteger(id.auth_time) && id.nonce === res.auth.params.nonce && released.every((c) => !(c in id)), id);
    check('... the access token without resource has no audience: opaque', t.access_token.split('.').length === 1, t.access_token.length);
    const ui = await userinfo(op, t.access_token);
    check('... userinfo: sub, profile, email, groups, tenant', ui.status === 200 && ui.json.sub === 'alice' && ui.json.name === 'Alice Example' && ui.json.email === 'alice@example.test'
      && ui.json.email_verified === true && sameList(ui.json.groups, ['staff', 'admins']) && ui.json.tenant === 'acme', ui);

    const api = await refresh(op, t.refresh_token, { resource: AUDIENCE });
    const apiAt = api.json.access_token && decodeJwt(api.json.access_token).payload;
    const apiId = api.json.id_token && decodeJwt(api.json.id_token).payload;
    check('... refresh with resource: a JWT for that audience', api.status === 200 && apiAt?.aud === AUDIENCE && apiAt.sub === 'alice' && await verifyJwt(op, api.json.access_token), api.json);
    check('... whose ID token still has none of the userinfo claims', apiId && released.every((c) => !(c in apiId)) && apiId.acr === ACR_PASSWORD && apiId.auth_time === id.auth_time, apiId);
    const refused = await userinfo(op, api.json.access_token);
    check('... that JWT is refused at userinfo (it has an audience)', refused.status === 401 && /invalid_token/.test(refused.wwwAuthenticate || ''), refused);
    const other = await refresh(op, api.json.refresh_token, { resource: OTHER_AUDIENCE });
    check('... refresh with another https resource: a JWT for it', other.status === 200 && decodeJwt(other.json.access_token).payload.aud === OTHER_AUDIENCE, other.json);

    await postJson(`${op.issuer}/test/claims?sub=alice`, { groups: ['staff'] });
    const plain = await refresh(op, other.json.refresh_token);
    check('... refresh without resource: opaque again', plain.status === 200 && plain.json.access_token.split('.').length === 1, plain.json);
    const ui2 = await userinfo(op, plain.json.access_token);
    check('... and userinfo with it after a refresh: the claims as /test/claims left them', ui2.status === 200 && sameList(ui2.json.groups, ['staff']) && ui2.json.tenant === 'acme', ui2);

    const withApi = await login(op, new Browser(), { scope: SCOPE });
    const wt = (await redeem(op, withApi.auth, withApi.callback.get('code'))).json;
    check('... scope api, no resource: still an opaque token that userinfo takes', wt.access_token.split('.').length === 1 && (await userinfo(op, wt.access_token)).status === 200, wt.scope);
    const wapi = await refresh(op, wt.refresh_token, { resource: AUDIENCE });
    const wapiAt = decodeJwt(wapi.json.access_token).payload;
    check('... refresh for the API audience: its JWT with scope api', wapi.status === 200 && wapiAt.aud === AUDIENCE && wapiAt.scope === 'api', wapiAt);
    const cc = await token(op, { grant_type: 'client_credentials' });
    check('... client_credentials without resource: a JWT for the API audience, as without the setting', cc.status === 200 && decodeJwt(cc.json.access_token).payload.aud === AUDIENCE, cc.json);
  } finally {
    await op.stop();
  }
}

async function badEnvironment() {
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  check('without OP_REDIRECT_URIS: exits non-zero, prints nothing to stdout', code !== 0 && out === '', { code, out });
  const badHost = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH, OP_REDIRECT_URIS: REDIRECT_URI, OP_HOST: 'example.com' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const badHostCode = await new Promise((resolve) => badHost.on('exit', resolve));
  check('OP_HOST other than 127.0.0.1 or localhost: exits non-zero', badHostCode !== 0, badHostCode);
}

for (const test of [mainFlow, scopesWithoutApi, postAuthWithoutRotation, restartWithState, localhostIssuer, claims, stepUp, userinfoClaims, badEnvironment]) {
  console.log(`# ${test.name}`);
  try {
    await test();
  } catch (err) {
    check(`${test.name} ran to the end`, false, err.stack);
  }
}

const sorted = [...startTimes].sort((a, b) => a - b);
const avg = sorted.reduce((a, b) => a + b, 0) / sorted.length;
console.log(`# spawn to ready line: min ${sorted[0].toFixed(0)} ms, median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms, max ${sorted.at(-1).toFixed(0)} ms, mean ${avg.toFixed(0)} ms over ${sorted.length} starts`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
