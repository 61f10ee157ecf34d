// tokengate's test OpenID Provider: a real `oidc-provider` configured the way the gateway
// is used in production — a confidential client, the code flow with PKCE, refresh tokens
// for offline_access (rotating, with replay detection), JWT access tokens for an API
// audience, revocation, RP-initiated and back-channel logout — plus a login form for
// test users and a few /test/ endpoints that let tests count and provoke events.
//
// Started by the Rust test harness and by scripts/demo. When it listens it prints one
// line to stdout, {"ready":true,"issuer":…,"port":…}; everything else goes to stderr.
//
// Environment (all optional but OP_REDIRECT_URIS):
//   OP_PORT                       port on 127.0.0.1; 0 or unset: a free one
//   OP_CLIENT_ID, OP_CLIENT_SECRET   the confidential client (gateway / gateway-secret)
//   OP_CLIENT_AUTH                client_secret_basic (default) or client_secret_post
//   OP_REDIRECT_URIS              comma-separated redirect URIs of the client
//   OP_POST_LOGOUT_REDIRECT_URIS  comma-separated post-logout redirect URIs
//   OP_BACKCHANNEL_LOGOUT_URI     the client's back-channel logout endpoint
//   OP_ACCESS_TOKEN_TTL           access token lifetime in seconds (300)
//   OP_ROTATE_REFRESH             1 (default): refresh tokens are one-time use; 0: reusable
//   OP_API_AUDIENCE               `aud` of access tokens (https://api.tokengate.test)
//   OP_STATE_DIR                  keep keys and every record in JSON files there, so a
//                                 restart on the same port continues where it stopped
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const env = process.env;
const list = (v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);
const TTL = Number(env.OP_ACCESS_TOKEN_TTL || 300);
const ROTATE = (env.OP_ROTATE_REFRESH ?? '1') !== '0';
const AUDIENCE = env.OP_API_AUDIENCE || 'https://api.tokengate.test';
const STATE_DIR = env.OP_STATE_DIR || '';
const log = (...a) => console.error('[op]', ...a);

const USERS = {
  alice: {
    password: 'alice-password',
    claims: { name: 'Alice Example', given_name: 'Alice', family_name: 'Example', preferred_username: 'alice', email: 'alice@example.test', email_verified: true },
  },
  bob: {
    password: 'bob-password',
    claims: { name: 'Bob Example', given_name: 'Bob', family_name: 'Example', preferred_username: 'bob', email: 'bob@example.test', email_verified: true },
  },
};

// === Storage: one in-memory map for every model, optionally mirrored to a file. Our own
// adapter (rather than the built-in one) so /test/ endpoints can find tokens by account.
const records = new Map(); // `${model}:${id}` → { payload, expiresAt }
const stateFile = STATE_DIR && path.join(STATE_DIR, 'records.json');
if (stateFile && fs.existsSync(stateFile)) {
  for (const [k, v] of Object.entries(JSON.parse(fs.readFileSync(stateFile, 'utf8')))) records.set(k, v);
}
function persist() {
  if (stateFile) fs.writeFileSync(stateFile, JSON.stringify(Object.fromEntries(records)));
}

class Adapter {
  constructor(model) {
    this.model = model;
  }
  key(id) {
    return `${this.model}:${id}`;
  }
  async upsert(id, payload, expiresIn) {
    records.set(this.key(id), { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : null });
    persist();
  }
  async find(id) {
    const r = records.get(this.key(id));
    if (!r) return undefined;
    if (r.expiresAt && r.expiresAt < Date.now()) {
      records.delete(this.key(id));
      return undefined;
    }
    return r.payload;
  }
  async findByUid(uid) {
    for (const [k, r] of records) if (k.startsWith(`${this.model}:`) && r.payload.uid === uid) return this.find(k.slice(this.model.length + 1));
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async consume(id) {
    const r = records.get(this.key(id));
    if (r) r.payload.consumed = Math.floor(Date.now() / 1000);
    persist();
  }
  async destroy(id) {
    records.delete(this.key(id));
    persist();
  }
  async revokeByGrantId(grantId) {
    for (const [k, r] of records) if (r.payload.grantId === grantId) records.delete(k);
    persist();
  }
}

// === Signing key: RS256, generated once (and kept in OP_STATE_DIR when set).
function signingKeys() {
  const file = STATE_DIR && path.join(STATE_DIR, 'jwks.json');
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
  const jwks = { keys: [jwk] };
  if (file) {
    fs.mkdirSync(STATE_DIR, { recursive: true });
    fs.writeFileSync(file, JSON.stringify(jwks));
  }
  return jwks;
}

// === What tests can observe.
const stats = {
  grants: { authorization_code: 0, refresh_token: 0, client_credentials: 0 },
  grant_errors: {},
  revocations: 0,
  backchannel_logouts: 0,
  end_sessions: 0,
};
const revoked = []; // { token, token_type_hint } as received at the revocation endpoint

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(env.OP_PORT || 0), '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

const client = {
  client_id: env.OP_CLIENT_ID || 'gateway',
  client_secret: env.OP_CLIENT_SECRET || 'gateway-secret',
  token_endpoint_auth_method: env.OP_CLIENT_AUTH || 'client_secret_basic',
  redirect_uris: list(env.OP_REDIRECT_URIS),
  post_logout_redirect_uris: list(env.OP_POST_LOGOUT_REDIRECT_URIS),
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
};
if (env.OP_BACKCHANNEL_LOGOUT_URI) {
  client.backchannel_logout_uri = env.OP_BACKCHANNEL_LOGOUT_URI;
  client.backchannel_logout_session_required = true;
}
if (client.redirect_uris.length === 0) {
  log('OP_REDIRECT_URIS is required');
  process.exit(2);
}

// A resource server for the API audience (and any https:// audience a route asks for):
// JWT access tokens, signed with the provider's key.
function resourceServer(audience) {
  return { scope: 'api', audience, accessTokenTTL: TTL, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
}

const provider = new Provider(issuer, {
  adapter: Adapter,
  clients: [client],
  jwks: signingKeys(),
  cookies: { keys: ['tokengate-test-provider-cookie-key'] },
  scopes: ['openid', 'profile', 'email', 'offline_access', 'api'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  // Code flow: put the scope-requested claims in the ID token (the gateway shows them).
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const user = USERS[sub];
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  rotateRefreshToken: () => ROTATE,
  ttl: {
    AccessToken: TTL,
    ClientCredentials: TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Grant: 14 * 86400,
    Session: 14 * 86400,
    RefreshToken: 14 * 86400,
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // The confirmation form submits itself ("yes, sign me out of the provider too");
      // it stays a plain form with id="op-logout" for HTTP clients.
      async logoutSource(ctx, form) {
        const yes = form
          .replace('<form', '<form id="op-logout"')
          .replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
        ctx.body = `<!doctype html><html><head><meta charset="utf-8"><title>Signing out</title></head>
          <body style="font-family:system-ui,sans-serif;text-align:center;margin-top:4rem">
          <p>Signing you out…</p>${yes}<script>document.getElementById('op-logout').submit()</script></body></html>`;
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = `<!doctype html><html><head><meta charset="utf-8"><title>Signed out</title></head>
          <body style="font-family:system-ui,sans-serif;text-align:center;margin-top:4rem"><p>You are signed out.</p></body></html>`;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? AUDIENCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator === AUDIENCE || indicator.startsWith('https://')) return resourceServer(indicator);
        throw new errors.InvalidTarget();
      },
    },
  },
});

provider.on('grant.success', (ctx) => {
  const type = ctx.oidc.params.grant_type;
  stats.grants[type] = (stats.grants[type] || 0) + 1;
});
provider.on('backchannel.success', () => stats.backchannel_logouts++);
provider.on('end_session.success', () => stats.end_sessions++);
provider.on('server_error', (_ctx, err) => log('server error', err));
// Outcomes the events do not carry: refused grants and revocations, seen after the route ran.
provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  if (route === 'token' && ctx.status >= 400) {
    const type = ctx.oidc.params?.grant_type || 'unknown';
    stats.grant_errors[type] = (stats.grant_errors[type] || 0) + 1;
  }
  if (route === 'revocation' && ctx.status === 200) {
    stats.revocations++;
    revoked.push({ token: ctx.oidc.params?.token, token_type_hint: ctx.oidc.params?.token_type_hint });
  }
});

// === Interactions: our login form; consent is granted automatically (first-party client).
const page = (title, body) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${title} · tokengate test provider</title>
<style>body{font-family:system-ui,sans-serif;background:#eef1f5;margin:0}main{max-width:22rem;margin:5rem auto;background:#fff;padding:2rem;border-radius:.6rem;box-shadow:0 2px 10px rgba(0,0,0,.08)}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .3rem;font-size:.9rem}input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #c5ccd6;border-radius:.35rem;font:inherit}
button{margin-top:1.2rem;width:100%;padding:.6rem;border:0;border-radius:.35rem;background:#2c6bed;color:#fff;font:inherit;cursor:pointer}.err{color:#b3261e}.hint{color:#5b6b7c;font-size:.85rem}</style>
</head><body><main>${body}</main></body></html>`;

function loginForm(uid, error) {
  return page('Sign in', `<h1>Sign in</h1><p class="hint">tokengate test provider</p>
${error ? `<p class="err">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}/login" autocomplete="off">
<label for="login">User</label><input id="login" name="login" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form>
<p class="hint">Test users: alice / alice-password, bob / bob-password</p>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) break;
  }
  return Object.fromEntries(new URLSearchParams(body));
}

async function grantConsent(req, res, interaction) {
  const { prompt, params, session } = interaction;
  const { details } = prompt;
  let { grantId } = interaction;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  if (details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
  }
  grantId = await grant.save();
  const consent = interaction.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function interactions(req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return false;
  const interaction = await provider.interactionDetails(req, res);
  if (req.method === 'GET' && !m[2]) {
    if (interaction.prompt.name === 'consent') {
      await grantConsent(req, res, interaction);
    } else {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginForm(interaction.uid));
    }
    return true;
  }
  if (req.method === 'POST' && m[2]) {
    const form = await readForm(req);
    const user = USERS[form.login];
    if (!user || user.password !== form.password) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginForm(interaction.uid, 'Invalid login'));
      return true;
    }
    await provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
    return true;
  }
  res.writeHead(405);
  res.end();
  return true;
}

// === /test/: observe and provoke.
function testEndpoints(req, res, url) {
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && url.pathname === '/test/stats') return json(200, stats), true;
  if (req.method === 'GET' && url.pathname === '/test/revocations') return json(200, revoked), true;
  if (req.method === 'POST' && url.pathname === '/test/revoke-refresh') {
    const sub = url.searchParams.get('sub');
    let n = 0;
    for (const [k, r] of records) {
      if (k.startsWith('RefreshToken:') && r.payload.accountId === sub) {
        records.delete(k);
        n++;
      }
    }
    persist();
    return json(200, { revoked: n }), true;
  }
  return false;
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith('/test/') && testEndpoints(req, res, url)) return;
    if (url.pathname.startsWith('/interaction/') && (await interactions(req, res, url))) return;
    callback(req, res);
  } catch (err) {
    log('request failed', err);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err.message || err));
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
process.stdout.write(`${JSON.stringify({ ready: true, issuer, port })}\n`);
