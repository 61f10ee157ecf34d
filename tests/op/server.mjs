// tokengate's test OpenID Provider.
//
// A real OpenID Provider (the `oidc-provider` package) set up the way tokengate is used in
// production: one confidential client, the code flow with PKCE S256, refresh tokens for
// offline_access (rotating, with replay detection), JWT access tokens for an API audience,
// revocation, introspection, RP-initiated and back-channel logout, client credentials.
// It adds a login form for two test users, grants consent automatically, and serves a few
// /test/ endpoints that let tests count what happened and provoke failures.
//
// Started by the Rust integration tests, and by scripts/demo and the browser end-to-end test
// (through scripts/stack.mjs), as `node tests/op/server.mjs`.
// Once it listens it prints exactly one line to stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else goes to stderr. SIGTERM or SIGINT stops it (exit code 0).
//
// Environment (all optional except OP_REDIRECT_URIS):
//   OP_PORT                       port on 127.0.0.1; 0 or unset: a free one. The issuer is
//                                 http://<OP_HOST>:<port>.
//   OP_HOST                       the host name in the issuer: 127.0.0.1 (default) or
//                                 localhost. The provider listens on 127.0.0.1 either way.
//                                 A browser keeps cookies per host name, not per port: with
//                                 the provider on localhost and the gateway on 127.0.0.1, the
//                                 provider's cookies never reach the gateway or its upstreams.
//   OP_CLIENT_ID                  the client's id (default gateway)
//   OP_CLIENT_SECRET              the client's secret (default gateway-secret)
//   OP_CLIENT_AUTH                its token endpoint auth method: client_secret_basic
//                                 (default) or client_secret_post
//   OP_REDIRECT_URIS              comma-separated redirect URIs of the client (required)
//   OP_POST_LOGOUT_REDIRECT_URIS  comma-separated post-logout redirect URIs
//   OP_BACKCHANNEL_LOGOUT_URI     the client's back-channel logout URI; logout tokens are
//                                 sent there when the user signs out at the provider
//   OP_ACCESS_TOKEN_TTL           access token lifetime in seconds (default 300), for the
//                                 authorization_code, refresh_token and client_credentials
//                                 grants alike
//   OP_ROTATE_REFRESH             1 (default): a refresh token is used once and replaced by
//                                 a new one; presenting a used one again revokes the whole
//                                 grant. 0: the same refresh token keeps working.
//   OP_API_AUDIENCE               `aud` of the access tokens (default
//                                 https://api.tokengate.test). They are JWTs (RS256, the
//                                 provider's key, see jwks_uri) with iss, sub, aud, exp,
//                                 iat, jti, client_id and scope. Scope `api` puts "api" in
//                                 their scope claim.
//   OP_REFRESH_TOKEN_TTL          refresh token lifetime in seconds (default 14 days). When
//                                 set, token responses also carry `refresh_expires_in`
//                                 (the seconds the refresh token has left), as Keycloak's do.
//   OP_DISABLE                    comma-separated endpoints to leave out of discovery and
//                                 switch off: `revocation`, `end_session`
//   OP_TLS_CERT, OP_TLS_KEY,      serve HTTPS with this certificate and key, asking clients
//   OP_TLS_CA                     for a certificate (verified against OP_TLS_CA, not
//                                 required): the issuer is https://127.0.0.1:<port>, and
//                                 mutual-TLS client authentication and certificate-bound
//                                 access tokens (RFC 8705) are on
//   OP_CLIENT_KEY_FILE            private_key_jwt: a PEM private key whose public half the
//                                 client registers
//   OP_CLIENT_CERT_FILE           self_signed_tls_client_auth: the client's certificate
//   OP_CLIENT_TLS_SUBJECT         tls_client_auth: the certificate subject (CN=gateway)
//   OP_DPOP                       1: the client must use DPoP (RFC 9449); nonces required
//   OP_PAR                        on: pushed authorization requests (RFC 9126) offered;
//                                 required: and required of the client
//   OP_RFC8414_ONLY               interop test setting: comma-separated metadata fields
//                                 (e.g. `revocation_endpoint`) left out of the OpenID
//                                 discovery document and published only in the RFC 8414
//                                 authorization-server metadata,
//                                 /.well-known/oauth-authorization-server (served only
//                                 with this setting), as some providers do
//   OP_DROP_ERROR_ISS             interop test setting: 1 leaves `iss` out of authorization
//                                 error responses (RFC 9207), though discovery still
//                                 promises it, as some providers do
//   OP_USERINFO_CLAIMS            interop test setting: 1 keeps the user's claims out of the
//                                 ID token (only sub and protocol claims: iss, aud, exp,
//                                 iat, auth_time, acr, amr, nonce, sid, ...); profile,
//                                 email, groups and tenant are released at the userinfo
//                                 endpoint (/me) only, as some providers do. oidc-provider
//                                 refuses at userinfo any access token with an audience,
//                                 so in this mode an access token asked for without
//                                 `resource` (code grant, refresh) has none: an opaque
//                                 token, for userinfo (no API takes it). One asked for with
//                                 `resource` (OP_API_AUDIENCE, any https:// URL) is the
//                                 usual JWT for that audience.
//   OP_STATE_DIR                  keep the signing key and every record (sessions, grants,
//                                 codes, refresh tokens, ...) in JSON files in this
//                                 directory, so that a restart on the same OP_PORT carries on
//                                 where the previous process stopped. Unset: a new key at
//                                 every start, records in memory only.
//
// Test users: alice / alice-password and bob / bob-password (sub = the login name). Their
// claims: name, given_name, family_name, preferred_username, groups (alice: staff, admins;
// bob: staff) and tenant (acme) with scope profile; email, email_verified with scope email.
//
// Authentication context (acr_values_supported): a login with username and password ends
// with acr urn:tokengate:password (amr ["pwd"]). When the authorization request's
// acr_values (space-separated) names urn:tokengate:mfa, the login form also asks for a
// one-time code (<input id="code" name="code">; the code is 123456): with it the login
// ends with acr urn:tokengate:mfa (amr ["pwd", "otp"]). A wrong code shows the form again;
// so does an empty one unless acr_values also names urn:tokengate:password. A request whose
// acr_values names supported values, none of them the provider session's acr (a password
// session asked for mfa), shows the login form again instead of answering with the old
// session's acr (prompt=none: login_required); acr_values naming no supported value are
// ignored. max_age is oidc-provider's own: a session older than that logs in again. ID
// tokens always carry acr, amr and auth_time, after a refresh too (the values of the login
// that started the grant).
//
// Test endpoints (for tests only; no authentication):
//   GET  /test/stats               counts of grants, refused grants, revocations, logouts
//   GET  /test/revocations         what the revocation endpoint received, in order
//   GET  /test/issued              every token the token endpoint issued, in order
//   POST /test/revoke-refresh?sub= destroy a user's refresh tokens (next refresh fails)
//   POST /test/fault?token=        make the token endpoint slow (&ms=), answer garbage,
//                                  drop connections, or (off) behave again
//   POST /test/tamper?id_token=    spoil the ID token of the next token response (see
//                                  tamperIdToken)
//   POST /test/sign                {header, claims, foreign_key} → {token}: a JWT signed
//                                  with the provider's key (or, foreign_key, another one)
//   POST /test/claims?sub=         a JSON object merged into that user's claims (a null
//                                  value removes the claim), e.g. {"groups":["staff"]};
//                                  answers 200 with the user's claims. Tokens issued
//                                  afterwards (the ID token of the next refresh, userinfo)
//                                  carry the new values; those issued before keep theirs.
//                                  With OP_STATE_DIR the claims survive a restart.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

const log = (...args) => console.error('[op]', ...args);
// stdout carries the ready line and nothing else: oidc-provider's notices (console.info)
// and anything else logged go to stderr.
console.log = console.info = console.debug = (...args) => console.error(...args);

function fail(message) {
  log(message);
  process.exit(2);
}

// === Settings ==========================================================================

const env = process.env;
const list = (value) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : []);

function seconds(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) fail(`${name} must be a positive number of seconds, not ${JSON.stringify(raw)}`);
  return n;
}

const PORT = Number(env.OP_PORT || 0);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) fail(`OP_PORT is not a port: ${JSON.stringify(env.OP_PORT)}`);
const CLIENT_AUTH = env.OP_CLIENT_AUTH || 'client_secret_basic';
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'];
if (!AUTH_METHODS.includes(CLIENT_AUTH)) {
  fail(`OP_CLIENT_AUTH must be one of ${AUTH_METHODS.join(', ')}, not ${JSON.stringify(CLIENT_AUTH)}`);
}
const TLS = env.OP_TLS_CERT ? {
  cert: fs.readFileSync(env.OP_TLS_CERT),
  key: fs.readFileSync(env.OP_TLS_KEY),
  ca: env.OP_TLS_CA ? fs.readFileSync(env.OP_TLS_CA) : undefined,
} : null;
if (CLIENT_AUTH.endsWith('tls_client_auth') && !TLS) fail(`${CLIENT_AUTH} needs OP_TLS_CERT and OP_TLS_KEY`);
const DPOP = env.OP_DPOP === '1';
const PAR = env.OP_PAR || '';
if (!['', 'on', 'required'].includes(PAR)) fail(`OP_PAR must be on or required, not ${JSON.stringify(PAR)}`);
const REDIRECT_URIS = list(env.OP_REDIRECT_URIS);
if (REDIRECT_URIS.length === 0) fail('OP_REDIRECT_URIS is required (comma-separated redirect URIs of the client)');
const ACCESS_TOKEN_TTL = seconds('OP_ACCESS_TOKEN_TTL', 300);
const ROTATE_REFRESH = (env.OP_ROTATE_REFRESH || '1') !== '0';
const AUDIENCE = env.OP_API_AUDIENCE || 'https://api.tokengate.test';
const STATE_DIR = env.OP_STATE_DIR || '';
const HOST = env.OP_HOST || '127.0.0.1';
if (!['127.0.0.1', 'localhost'].includes(HOST)) fail(`OP_HOST must be 127.0.0.1 or localhost, not ${JSON.stringify(HOST)}`);
const REFRESH_TOKEN_TTL = seconds('OP_REFRESH_TOKEN_TTL', 0);
const DISABLED = new Set(list(env.OP_DISABLE));
for (const d of DISABLED) if (!['revocation', 'end_session'].includes(d)) fail(`OP_DISABLE: unknown endpoint ${JSON.stringify(d)}`);
// Interop settings: deviations of other providers, reproduced on demand.
const RFC8414_ONLY = new Set(list(env.OP_RFC8414_ONLY));
const DROP_ERROR_ISS = env.OP_DROP_ERROR_ISS === '1';
const USERINFO_CLAIMS = env.OP_USERINFO_CLAIMS === '1';
// The scope of the API audience (a resource server scope, not an OpenID Connect one).
const API_SCOPE = 'api';

// === Test users ========================================================================

const USERS = {
  alice: {
    password: 'alice-password',
    claims: {
      name: 'Alice Example',
      given_name: 'Alice',
      family_name: 'Example',
      preferred_username: 'alice',
      groups: ['staff', 'admins'],
      tenant: 'acme',
      email: 'alice@example.test',
      email_verified: true,
    },
  },
  bob: {
    password: 'bob-password',
    claims: {
      name: 'Bob Example',
      given_name: 'Bob',
      family_name: 'Example',
      preferred_username: 'bob',
      groups: ['staff'],
      tenant: 'acme',
      email: 'bob@example.test',
      email_verified: true,
    },
  },
};

// Authentication context classes (acr) and what a login needs for each.
const ACR_PASSWORD = 'urn:tokengate:password';
const ACR_MFA = 'urn:tokengate:mfa';
const ACR_VALUES = [ACR_PASSWORD, ACR_MFA];
const MFA_CODE = '123456';

// === Storage ===========================================================================
// Every model (Session, Interaction, Grant, AuthorizationCode, RefreshToken, ...) lives in a
// map of its own. With OP_STATE_DIR each map is mirrored to <dir>/<Model>.json, rewritten
// synchronously and atomically (temporary file, then rename) on every change, so even a
// killed process leaves consistent files behind.

if (STATE_DIR) fs.mkdirSync(STATE_DIR, { recursive: true });

const stores = new Map(); // model name → Map(id → { payload, expiresAt (ms) | null })

function storeOf(model) {
  let store = stores.get(model);
  if (!store) {
    store = new Map();
    const file = STATE_DIR && path.join(STATE_DIR, `${model}.json`);
    if (file && fs.existsSync(file)) {
      for (const [id, record] of Object.entries(JSON.parse(fs.readFileSync(file, 'utf8')))) store.set(id, record);
    }
    stores.set(model, store);
  }
  return store;
}

function persist(model) {
  if (!STATE_DIR) return;
  const store = storeOf(model);
  const now = Date.now();
  for (const [id, record] of store) if (record.expiresAt && record.expiresAt < now) store.delete(id);
  const file = path.join(STATE_DIR, `${model}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(Object.fromEntries(store)));
  fs.renameSync(`${file}.tmp`, file);
}

class FileAdapter {
  constructor(model) {
    this.model = model;
    this.store = storeOf(model);
  }

  async upsert(id, payload, expiresIn) {
    this.store.set(id, { payload: structuredClone(payload), expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : null });
    persist(this.model);
  }

  async find(id) {
    const record = this.store.get(id);
    if (!record) return undefined;
    if (record.expiresAt && record.expiresAt < Date.now()) {
      this.store.delete(id);
      persist(this.model);
      return undefined;
    }
    return structuredClone(record.payload);
  }

  async findByUid(uid) {
    for (const [id, record] of this.store) if (record.payload.uid === uid) return this.find(id);
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [id, record] of this.store) if (record.payload.userCode === userCode) return this.find(id);
    return undefined;
  }

  async consume(id) {
    const record = this.store.get(id);
    if (record) {
      record.payload.consumed = Math.floor(Date.now() / 1000);
      persist(this.model);
    }
  }

  async destroy(id) {
    if (this.store.delete(id)) persist(this.model);
  }

  async revokeByGrantId(grantId) {
    let changed = false;
    for (const [id, record] of this.store) {
      if (record.payload.grantId === grantId) {
        this.store.delete(id);
        changed = true;
      }
    }
    if (changed) persist(this.model);
  }
}

// === Claims changed by tests ===========================================================
// POST /test/claims merges claims into a user's; with OP_STATE_DIR every user's claims are
// kept in <dir>/claims.json, so a restart carries on with the changed ones.

const CLAIMS_FILE = STATE_DIR && path.join(STATE_DIR, 'claims.json');
if (CLAIMS_FILE && fs.existsSync(CLAIMS_FILE)) {
  for (const [sub, claims] of Object.entries(JSON.parse(fs.readFileSync(CLAIMS_FILE, 'utf8')))) {
    if (Object.hasOwn(USERS, sub)) USERS[sub].claims = claims;
  }
}

/// Merges `patch` into the claims of `sub` (JSON merge patch, one level: null removes a
/// claim, any other value replaces it). Returns the user's claims.
function mergeClaims(sub, patch) {
  const { claims } = USERS[sub];
  for (const [name, value] of Object.entries(patch)) {
    if (name === 'sub') continue; // the subject is the login name, always
    if (value === null) delete claims[name];
    else claims[name] = structuredClone(value);
  }
  if (CLAIMS_FILE) {
    const all = Object.fromEntries(Object.entries(USERS).map(([id, user]) => [id, user.claims]));
    fs.writeFileSync(`${CLAIMS_FILE}.tmp`, JSON.stringify(all));
    fs.renameSync(`${CLAIMS_FILE}.tmp`, CLAIMS_FILE);
  }
  return { sub, ...claims };
}

// === Signing key =======================================================================
// One RS256 key (2048-bit) with a kid, made at start, or kept in OP_STATE_DIR/jwks.json.

function signingKeys() {
  const file = STATE_DIR && path.join(STATE_DIR, 'jwks.json');
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  // PEM first, then a KeyObject of its own for the JWK export. Exporting the KeyObject
  // that generateKeyPairSync returns can deadlock Node.js 20: a garbage collection inside
  // the export may destroy the finished key-generation job, whose destructor waits for the
  // lock the export holds (seen as a provider that listens but never prints its ready line).
  const { privateKey: pem } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const jwks = {
    keys: [{ ...crypto.createPrivateKey(pem).export({ format: 'jwk' }), kid: crypto.randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' }],
  };
  if (file) {
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(jwks));
    fs.renameSync(`${file}.tmp`, file);
  }
  return jwks;
}

// === What tests can observe (since this process started) ================================

const stats = {
  grants: { authorization_code: 0, refresh_token: 0, client_credentials: 0 }, // successful token responses, by grant_type
  grant_errors: {}, // refused token requests, by grant_type
  revocations: 0, // answered requests to the revocation endpoint
  backchannel_logouts: 0, // logout tokens delivered
  end_sessions: 0, // completed RP-initiated logouts
};
const revocations = []; // { token, token_type_hint } in the order the revocation endpoint got them
// Every token the token endpoint handed out, newest last: tests look for these values
// where they must never appear (responses to the browser, logs).
const issued = []; // { grant_type, access_token, refresh_token, id_token }

// === The provider ======================================================================
// Listen first: the issuer names the port actually bound.

// With TLS the provider asks every client for a certificate but lets those without one
// in: oidc-provider decides, per client, whether one is needed.
const server = TLS
  ? https.createServer({ ...TLS, requestCert: true, rejectUnauthorized: false })
  : http.createServer();
server.on('error', (err) => {
  log(`cannot listen on 127.0.0.1:${PORT}:`, err.message);
  process.exit(1);
});
await new Promise((resolve) => server.listen(PORT, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `${TLS ? 'https' : 'http'}://${HOST}:${port}`;

const client = {
  client_id: env.OP_CLIENT_ID || 'gateway',
  client_secret: env.OP_CLIENT_SECRET || 'gateway-secret',
  token_endpoint_auth_method: CLIENT_AUTH,
  redirect_uris: REDIRECT_URIS,
  post_logout_redirect_uris: list(env.OP_POST_LOGOUT_REDIRECT_URIS),
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
};
if (CLIENT_AUTH === 'client_secret_basic' || CLIENT_AUTH === 'client_secret_post') {
  // (secret methods keep client_secret above)
} else {
  delete client.client_secret;
}
if (CLIENT_AUTH === 'private_key_jwt') {
  if (!env.OP_CLIENT_KEY_FILE) fail('private_key_jwt needs OP_CLIENT_KEY_FILE');
  const jwk = crypto.createPublicKey(fs.readFileSync(env.OP_CLIENT_KEY_FILE)).export({ format: 'jwk' });
  // kid: the RFC 7638 thumbprint, what the gateway names a key by when no kid is set.
  const required = jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x', 'y'];
  const canonical = JSON.stringify(Object.fromEntries(required.map((k) => [k, jwk[k]])));
  jwk.kid = crypto.createHash('sha256').update(canonical).digest('base64url');
  client.jwks = { keys: [jwk] };
}
if (CLIENT_AUTH === 'tls_client_auth') client.tls_client_auth_subject_dn = env.OP_CLIENT_TLS_SUBJECT || 'CN=gateway';
if (CLIENT_AUTH === 'self_signed_tls_client_auth') {
  if (!env.OP_CLIENT_CERT_FILE) fail('self_signed_tls_client_auth needs OP_CLIENT_CERT_FILE');
  const cert = new crypto.X509Certificate(fs.readFileSync(env.OP_CLIENT_CERT_FILE));
  client.jwks = { keys: [{ ...cert.publicKey.export({ format: 'jwk' }), x5c: [cert.raw.toString('base64')] }] };
}
if (TLS) client.tls_client_certificate_bound_access_tokens = true;
if (DPOP) client.dpop_bound_access_tokens = true;
if (PAR === 'required') client.require_pushed_authorization_requests = true;
if (env.OP_BACKCHANNEL_LOGOUT_URI) {
  client.backchannel_logout_uri = env.OP_BACKCHANNEL_LOGOUT_URI;
  client.backchannel_logout_session_required = true;
}

const ownTokensOnly = async (_ctx, caller, token) => token.clientId === caller.clientId;

const isLoopback = (url) => /^(127\.|localhost$|\[::1\]$)/.test(new URL(url).hostname);
const isHttpsUrl = (value) => typeof value === 'string' && URL.parse(value)?.protocol === 'https:';

// Access tokens for OP_API_AUDIENCE, and for any other https:// audience asked for with
// `resource`, are JWTs signed with the provider's key.
function resourceServerInfo(audience) {
  return {
    scope: API_SCOPE,
    audience,
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

// oidc-provider's prompts, with one more check on login: a request whose acr_values names
// supported values, none of them the provider session's acr (a password session asked for
// mfa), logs in again. oidc-provider itself only does so for essential acr claims (the
// `claims` parameter); for acr_values, which are voluntary, it would answer with the old
// session's acr. A login just made (its result in this very request) stands, as with
// max_age: the form has asked for what acr_values allows.
function interactionPolicyWithAcr() {
  const { Check } = interactionPolicy;
  const policy = interactionPolicy.base();
  policy.get('login').checks.add(new Check(
    'acr_values',
    'requested ACR could not be obtained',
    'login_required',
    (ctx) => {
      const { oidc } = ctx;
      const wanted = requestedAcrs(oidc.params.acr_values);
      if (wanted.length === 0 || !oidc.session.accountId || oidc.result?.login) return Check.NO_NEED_TO_PROMPT;
      return wanted.includes(oidc.acr) ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    },
    ({ oidc }) => ({ acr_values: oidc.params.acr_values }),
  ));
  return policy;
}

/// The supported acr values among a space-separated acr_values parameter.
function requestedAcrs(acrValues) {
  return String(acrValues || '').split(' ').filter((v) => ACR_VALUES.includes(v));
}

const jwks = signingKeys();
const provider = new Provider(issuer, {
  adapter: FileAdapter,
  clients: [client],
  jwks,
  cookies: { keys: ['tokengate-test-provider-cookie-key'] },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups', 'tenant'],
    email: ['email', 'email_verified'],
    // Protocol claims of every ID token.
    acr: null,
    amr: null,
    auth_time: null,
  },
  // The ID token carries every claim of the granted scopes (the gateway shows them);
  // OP_USERINFO_CLAIMS: only sub and protocol claims, the others at userinfo.
  conformIdTokenClaims: USERINFO_CLAIMS,
  acrValues: ACR_VALUES,
  // Looked up at every use (token requests, userinfo), so claims changed with
  // POST /test/claims reach the tokens issued afterwards.
  async findAccount(_ctx, sub) {
    if (!Object.hasOwn(USERS, sub)) return undefined;
    return { accountId: sub, claims: async () => ({ ...structuredClone(USERS[sub].claims), sub }) };
  },
  responseTypes: ['code'],
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    policy: interactionPolicyWithAcr(),
  },
  pkce: { required: () => true },
  rotateRefreshToken: () => ROTATE_REFRESH,
  // An API can judge how the user signed in (RFC 9068 §2.2.1: acr, auth_time), and ask
  // for more with an RFC 9470 challenge: access tokens carry the login's acr and
  // auth_time, from the code or refresh token they were issued for.
  async extraTokenClaims(ctx) {
    const source = ctx?.oidc?.entities?.AuthorizationCode || ctx?.oidc?.entities?.RefreshToken;
    if (!source?.acr) return undefined;
    return { acr: source.acr, ...(source.authTime ? { auth_time: source.authTime } : {}) };
  },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Grant: 14 * 86400,
    Session: 14 * 86400,
    RefreshToken: REFRESH_TOKEN_TTL || 14 * 86400,
  },
  features: {
    devInteractions: { enabled: false },
    // A client may revoke and introspect its own tokens only.
    revocation: { enabled: !DISABLED.has('revocation'), allowedPolicy: ownTokensOnly },
    introspection: { enabled: true, allowedPolicy: ownTokensOnly },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: !DISABLED.has('end_session'), logoutSource, postLogoutSuccessSource },
    dPoP: DPOP ? { enabled: true, nonceSecret: crypto.randomBytes(32) } : { enabled: false },
    pushedAuthorizationRequests: { enabled: PAR !== '', requirePushedAuthorizationRequests: PAR === 'required' },
    mTLS: TLS ? {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      getCertificate: (ctx) => ctx.socket.getPeerX509Certificate?.()?.toString(),
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn'
        && ctx.socket.getPeerX509Certificate?.()?.subject.split('\n').join(',') === expected,
    } : { enabled: false },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter: the API audience (at the authorization endpoint, and for
      // client credentials); at the token endpoint, the one resource that was granted
      // (OP_USERINFO_CLAIMS: none, see useGrantedResource).
      defaultResource: async (_ctx, _client, oneOf) => {
        if (!oneOf) return AUDIENCE;
        return oneOf.includes(AUDIENCE) ? AUDIENCE : oneOf[0];
      },
      // OP_USERINFO_CLAIMS: without `resource` at the token endpoint, no audience either
      // (an opaque token that userinfo accepts), whatever the authorization granted.
      useGrantedResource: async () => !USERINFO_CLAIMS,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource === AUDIENCE || isHttpsUrl(resource)) return resourceServerInfo(resource);
        throw new errors.InvalidTarget();
      },
    },
  },
  clientAuthMethods: TLS ? AUTH_METHODS : AUTH_METHODS.filter((m) => !m.endsWith('tls_client_auth')),
  // oidc-provider refuses outgoing requests to special-use addresses, loopback among them;
  // the back-channel logout receivers of tests listen on 127.0.0.1, so loopback is allowed.
  fetch(url, options) {
    if (isLoopback(url)) delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Something went wrong</h1><p class="err">${escapeHtml(out.error)}</p>
<p>${escapeHtml(out.error_description || '')}</p>`);
  },
});

// Per-route audiences: a refresh token may be exchanged for an access token to any https://
// resource, not only those of the original authorization request (oidc-provider would
// answer invalid_target), and such a token carries the scopes granted to the API audience.
Object.defineProperty(provider.RefreshToken.prototype, 'resourceIndicators', {
  get() {
    const granted = new Set([this.resource].flat().filter(Boolean));
    return { has: (resource) => granted.has(resource) || isHttpsUrl(resource) };
  },
});
const grantedResourceScope = provider.Grant.prototype.getResourceScope;
provider.Grant.prototype.getResourceScope = function getResourceScope(resource) {
  const own = grantedResourceScope.call(this, resource);
  if (own || resource === AUDIENCE || !isHttpsUrl(resource)) return own;
  return grantedResourceScope.call(this, AUDIENCE);
};

// Every ID token carries acr, amr and auth_time: oidc-provider puts them in only when the
// authorization request asked (acr_values, max_age, prompt=login, the claims parameter).
// OP_USERINFO_CLAIMS: oidc-provider conforms an ID token only when the access token beside
// it can reach userinfo (has no audience); the ID token of a refresh with `resource` would
// carry the scopes' claims again. Keep every ID token to sub and protocol claims.
const issueIdToken = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = function issue(options = {}) {
  if (options.use === 'idtoken') {
    this.mask = { acr: null, amr: null, auth_time: null, ...this.mask };
    if (USERINFO_CLAIMS) this.scope = 'openid';
  }
  return issueIdToken.call(this, options);
};

// === Events ============================================================================

const bump = (counts, key) => {
  counts[key] = (counts[key] || 0) + 1;
};
provider.on('grant.success', (ctx) => bump(stats.grants, ctx.oidc.params.grant_type));
provider.on('grant.error', (ctx, err) => {
  bump(stats.grant_errors, ctx.oidc?.params?.grant_type || 'unknown');
  log(`token request refused: ${err.error} (${err.error_description || ''}${err.error_detail ? `: ${err.error_detail}` : ''})`);
});
for (const event of ['pushed_authorization_request.error', 'authorization.error', 'revocation.error']) {
  provider.on(event, (_ctx, err) => log(`${event}: ${err.error} (${err.error_description || ''}${err.error_detail ? `: ${err.error_detail}` : ''})`));
}
provider.on('backchannel.success', () => stats.backchannel_logouts++);
provider.on('backchannel.error', (_ctx, err) => log('back-channel logout failed:', err.message, err.cause?.message || ''));
provider.on('end_session.success', () => stats.end_sessions++);
provider.on('server_error', (_ctx, err) => log('server error:', err));

provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  if (route === 'token' && ctx.status === 200 && ctx.body?.access_token) {
    const { access_token, refresh_token, id_token } = ctx.body;
    if (REFRESH_TOKEN_TTL && refresh_token) {
      const stored = await provider.RefreshToken.find(refresh_token);
      if (stored) ctx.body = { ...ctx.body, refresh_expires_in: Math.max(0, stored.exp - Math.floor(Date.now() / 1000)) };
    }
    issued.push({ grant_type: ctx.oidc.params.grant_type, access_token, refresh_token, id_token });
    if (tamper && id_token) {
      ctx.body = { ...ctx.body, id_token: tamperIdToken(id_token, tamper) };
      tamper = null;
    }
  }
  // OP_RFC8414_ONLY: the fields move from discovery to the RFC 8414 metadata, which is the
  // discovery document served at its own path (see the request handler).
  if (route === 'discovery' && RFC8414_ONLY.size && ctx.body && typeof ctx.body === 'object') {
    const rfc8414 = ctx.req.rfc8414 === true;
    const body = { ...ctx.body };
    if (!rfc8414) for (const field of RFC8414_ONLY) delete body[field];
    ctx.body = body;
  }
  // OP_DROP_ERROR_ISS: an error redirected to the client loses its `iss`.
  if (DROP_ERROR_ISS && ctx.status >= 300 && ctx.status < 400) {
    const location = ctx.response.get('location');
    const target = location && URL.parse(location);
    if (target && REDIRECT_URIS.includes(`${target.origin}${target.pathname}`) && target.searchParams.has('error')) {
      target.searchParams.delete('iss');
      ctx.response.set('location', target.href);
    }
  }
  // The revocation endpoint has no success event; note what it received once it answered.
  if (route === 'revocation' && ctx.status === 200) {
    stats.revocations++;
    revocations.push({ token: ctx.oidc.params.token, token_type_hint: ctx.oidc.params.token_type_hint });
  }
  // Without a provider session the logout "form" is oidc-provider's self-submitting form
  // post: give it the same id as our logout page so HTTP clients find it either way.
  if (route === 'end_session' && typeof ctx.body === 'string' && !ctx.body.includes('id="op-logout"')) {
    ctx.body = ctx.body.replace('<form method="post"', '<form id="op-logout" method="post"');
  }
});

// === Pages =============================================================================

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · tokengate test provider</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#eef1f5;color:#1d2733;margin:0}
main{max-width:22rem;margin:5rem auto;background:#fff;padding:2rem 2.2rem;border-radius:.7rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 .2rem}
.brand{color:#5b6b7c;font-size:.85rem;margin:0 0 1.2rem}
label{display:block;margin:.9rem 0 .3rem;font-size:.9rem}
input{width:100%;box-sizing:border-box;padding:.55rem .6rem;border:1px solid #c5ccd6;border-radius:.35rem;font:inherit}
input:focus{outline:2px solid #2c6bed55;border-color:#2c6bed}
button{margin-top:1.3rem;width:100%;padding:.65rem;border:0;border-radius:.35rem;background:#2c6bed;color:#fff;font:inherit;font-weight:600;cursor:pointer}
button:hover{background:#1f56c7}
.err{color:#b3261e;background:#fdecea;padding:.5rem .7rem;border-radius:.35rem}
.hint{color:#5b6b7c;font-size:.85rem;margin-top:1.2rem;line-height:1.6}
code{background:#f1f3f6;padding:.05rem .3rem;border-radius:.25rem;white-space:nowrap}
</style>
</head>
<body><main>${body}</main></body>
</html>`;
}

// `mfa`: the request's acr_values names urn:tokengate:mfa, so the form asks for a
// one-time code too.
function loginPage(uid, { error, login, mfa = false } = {}) {
  return page('Sign in', `<h1>Sign in</h1>
<p class="brand">tokengate test provider</p>
${error ? `<p class="err">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${encodeURIComponent(uid)}/login" autocomplete="off">
<label for="login">Username</label>
<input id="login" name="login" value="${escapeHtml(login || '')}"${login ? '' : ' autofocus'} required>
<label for="password">Password</label>
<input id="password" name="password" type="password"${login ? ' autofocus' : ''} required>
${mfa ? `<label for="code">One-time code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code">
` : ''}<button type="submit">Sign in</button>
</form>
<p class="hint">Test users: <code>alice</code> / <code>alice-password</code><br>
<code>bob</code> / <code>bob-password</code>${mfa ? `<br>
One-time code: <code>${MFA_CODE}</code>` : ''}</p>`);
}

// RP-initiated logout: oidc-provider's confirmation form, signed out of the provider too
// (logout=yes), submitted on load by a script. It stays a plain form with id="op-logout"
// so an HTTP client can read it and post it.
async function logoutSource(ctx, form) {
  const auto = form
    .replace('id="op.logoutForm"', 'id="op-logout"')
    .replace('</form>', '<input type="hidden" name="logout" value="yes"/><noscript><button type="submit">Sign out</button></noscript></form>');
  ctx.body = page('Signing out', `<h1>Signing out…</h1>
<p class="brand">tokengate test provider</p>
${auto}
<script>document.getElementById('op-logout').submit();</script>`);
}

// Only shown when the logout request named no post_logout_redirect_uri: with one, the
// provider redirects there instead.
async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', `<h1>Signed out</h1>
<p class="brand">tokengate test provider</p>
<p>You are signed out of the provider.</p>`);
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

// === Interactions ======================================================================
// GET  /interaction/:uid        login prompt: the form; consent prompt: granted at once
// POST /interaction/:uid/login  check the credentials (urlencoded login, password)

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error('form too large');
  }
  return Object.fromEntries(new URLSearchParams(body));
}

// Everything the client asked for is granted: missing OpenID Connect scopes and claims,
// and the scopes of the requested resources (the API audience).
async function grantConsent(req, res, interaction) {
  const { prompt: { details }, params, session } = interaction;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(details.missingResourceScopes || {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = interaction.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, uid, action) {
  let interaction;
  try {
    interaction = await provider.interactionDetails(req, res);
  } catch (err) {
    if (!(err instanceof errors.SessionNotFound)) throw err;
    send(res, 400, 'text/html; charset=utf-8', page('Sign-in expired', `<h1>Sign-in expired</h1>
<p class="brand">tokengate test provider</p>
<p>This sign-in attempt is unknown or has expired. Start again from the application.</p>`));
    return;
  }
  if (interaction.uid !== uid) {
    send(res, 400, 'text/plain; charset=utf-8', 'interaction mismatch\n');
    return;
  }

  // What acr_values asks of this login: a one-time code field when it names mfa, and the
  // code required unless it names password too.
  const wanted = requestedAcrs(interaction.params.acr_values);
  const mfa = wanted.includes(ACR_MFA);
  const codeRequired = mfa && !wanted.includes(ACR_PASSWORD);

  if (req.method === 'GET' && !action) {
    if (interaction.prompt.name === 'consent') {
      await grantConsent(req, res, interaction);
    } else {
      send(res, 200, 'text/html; charset=utf-8', loginPage(uid, { mfa }));
    }
    return;
  }

  if (req.method === 'POST' && action === 'login') {
    const { login = '', password = '', code = '' } = await readForm(req);
    const user = Object.hasOwn(USERS, login) ? USERS[login] : undefined;
    if (!user || user.password !== password) {
      send(res, 200, 'text/html; charset=utf-8', loginPage(uid, { error: 'Invalid login', login, mfa }));
      return;
    }
    const otp = mfa && code.trim() !== '';
    if ((otp && code.trim() !== MFA_CODE) || (codeRequired && !otp)) {
      const error = otp ? 'Invalid one-time code' : 'One-time code required';
      send(res, 200, 'text/html; charset=utf-8', loginPage(uid, { error, login, mfa }));
      return;
    }
    const result = otp
      ? { accountId: login, acr: ACR_MFA, amr: ['pwd', 'otp'] }
      : { accountId: login, acr: ACR_PASSWORD, amr: ['pwd'] };
    await provider.interactionFinished(req, res, { login: result }, { mergeWithLastSubmission: false });
    return;
  }

  send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
}

// === /test/ endpoints ==================================================================

// A logout token signed with the provider's key (or, with `foreign_key`, a key of no one's):
// tests post variants of it to the gateway's back-channel logout endpoint.
// A provider gone wrong, for the gateway's hostile-input tests: POST /test/tamper?id_token=
// <mode> makes the next token response carry a spoiled ID token — `wrong_aud`, `expired`,
// `wrong_nonce` and `wrong_iss` re-signed with the provider's own key, `alg_none` unsigned,
// `bad_signature` with its signature bytes changed.
let tamper = null;
const TAMPER_MODES = ['wrong_aud', 'expired', 'wrong_nonce', 'wrong_iss', 'alg_none', 'bad_signature'];

function tamperIdToken(idToken, mode) {
  const [h, p, sig] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const own = crypto.createPrivateKey({ key: jwks.keys[0], format: 'jwk' });
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'wrong_aud': return signJwt(header, { ...claims, aud: 'another-client' }, own);
    case 'expired': return signJwt(header, { ...claims, iat: now - 7200, exp: now - 3600 }, own);
    case 'wrong_nonce': return signJwt(header, { ...claims, nonce: 'not-the-nonce' }, own);
    case 'wrong_iss': return signJwt(header, { ...claims, iss: 'https://evil.example' }, own);
    case 'alg_none': {
      const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
      return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
    }
    case 'bad_signature': {
      const bytes = Buffer.from(sig, 'base64url');
      bytes[0] ^= 0xff;
      return `${h}.${p}.${bytes.toString('base64url')}`;
    }
    default: return idToken;
  }
}

let foreignKey; // made on first use: key generation is slow, and most runs never need it

function signJwt(header, claims, key) {
  const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc(header)}.${enc(claims)}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

async function handleTest(req, res, url) {
  const json = (status, body) => send(res, status, 'application/json', `${JSON.stringify(body)}\n`);
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'POST /test/sign': {
      let body = '';
      for await (const chunk of req) body += chunk;
      const { header = {}, claims = {}, foreign_key: foreign = false } = JSON.parse(body || '{}');
      const own = jwks.keys[0];
      if (foreign) {
        // From PEM, for the reason given at signingKeys().
        foreignKey ??= crypto.createPrivateKey(crypto.generateKeyPairSync('rsa', {
          modulusLength: 2048,
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
          publicKeyEncoding: { type: 'spki', format: 'pem' },
        }).privateKey);
      }
      const key = foreign ? foreignKey : crypto.createPrivateKey({ key: own, format: 'jwk' });
      return json(200, { token: signJwt({ alg: 'RS256', kid: own.kid, ...header }, claims, key) });
    }
    case 'GET /test/stats':
      return json(200, stats);
    case 'GET /test/revocations':
      return json(200, revocations);
    case 'GET /test/issued':
      return json(200, issued);
    case 'POST /test/fault': {
      const kind = url.searchParams.get('token');
      if (!FAULTS.includes(kind)) return json(400, { error: `token must be one of ${FAULTS.join(', ')}` });
      tokenFault = kind === 'off' ? null : { kind, ms: Number(url.searchParams.get('ms') || 0) };
      return json(200, { fault: tokenFault });
    }
    case 'POST /test/tamper': {
      const mode = url.searchParams.get('id_token');
      if (!TAMPER_MODES.includes(mode)) return json(400, { error: `id_token must be one of ${TAMPER_MODES.join(', ')}` });
      tamper = mode;
      return json(200, { tamper });
    }
    case 'POST /test/claims': {
      // Merges a JSON object into the user's claims: tokens issued from now on carry them.
      const sub = url.searchParams.get('sub');
      if (!sub) return json(400, { error: 'sub is required' });
      if (!Object.hasOwn(USERS, sub)) return json(404, { error: `no user ${sub}` });
      let body = '';
      for await (const chunk of req) body += chunk;
      let patch;
      try {
        patch = JSON.parse(body);
      } catch (err) {
        return json(400, { error: `body is not JSON: ${err.message}` });
      }
      if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
        return json(400, { error: 'body must be a JSON object of claims' });
      }
      return json(200, mergeClaims(sub, patch));
    }
    case 'POST /test/revoke-refresh': {
      // Destroys every refresh token of the account: its next refresh is invalid_grant.
      const sub = url.searchParams.get('sub');
      if (!sub) return json(400, { error: 'sub is required' });
      const store = storeOf('RefreshToken');
      let revoked = 0;
      for (const [id, record] of store) {
        if (record.payload.accountId === sub) {
          store.delete(id);
          revoked++;
        }
      }
      persist('RefreshToken');
      return json(200, { revoked });
    }
    default:
      return json(404, { error: 'unknown test endpoint' });
  }
}

// === Requests ==========================================================================

// oidc-provider accepts client_secret_basic and client_secret_post alike, whichever the
// client registered. Hold the client to its OP_CLIENT_AUTH, so that tests show the gateway
// authenticates the way it is configured to: the registered method or invalid_client.
const CLIENT_AUTH_PATHS = new Set(['/token', '/token/revocation', '/token/introspection']);

async function refuseOtherClientAuth(req, res, url) {
  if (req.method !== 'POST' || !CLIENT_AUTH_PATHS.has(url.pathname)) return false;
  const basic = /^basic /i.test(req.headers.authorization || '');
  if (basic === (CLIENT_AUTH === 'client_secret_basic')) return false;
  const form = await readForm(req);
  if (url.pathname === '/token') bump(stats.grant_errors, form.grant_type || 'unknown');
  log(`${url.pathname}: client authentication other than ${CLIENT_AUTH} refused`);
  res.writeHead(401, { 'content-type': 'application/json', 'cache-control': 'no-store', 'www-authenticate': 'Basic realm="tokengate test provider"' });
  res.end(JSON.stringify({ error: 'invalid_client', error_description: `client authentication failed (the client must use ${CLIENT_AUTH})` }));
  return true;
}

// A token endpoint gone wrong, until told otherwise (POST /test/fault?token=…): `slow`
// answers after `ms` milliseconds, `garbage` answers 200 with a body that is not JSON,
// `reset` drops the connection without an answer, `off` ends the fault.
let tokenFault = null;
const FAULTS = ['slow', 'garbage', 'reset', 'off'];

/// True when the fault answered the request itself.
async function applyFault(req, res) {
  const fault = tokenFault;
  switch (fault.kind) {
    case 'slow':
      await new Promise((resolve) => setTimeout(resolve, fault.ms));
      return false;
    case 'garbage':
      send(res, 200, 'application/json', '<html>this is not a token response');
      return true;
    case 'reset':
      req.socket.destroy();
      return true;
    default:
      return false;
  }
}

const providerCallback = provider.callback();

server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith('/test/')) {
      await handleTest(req, res, url);
      return;
    }
    const interaction = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login))?$/);
    if (interaction) {
      await handleInteraction(req, res, decodeURIComponent(interaction[1]), interaction[2]);
      return;
    }
    // OP_RFC8414_ONLY: RFC 8414 metadata is the discovery document (every field kept),
    // answered by oidc-provider under the discovery route.
    if (url.pathname === '/.well-known/oauth-authorization-server' && RFC8414_ONLY.size) {
      req.url = '/.well-known/openid-configuration';
      req.rfc8414 = true;
    }
    if (url.pathname === '/token' && tokenFault && await applyFault(req, res)) return;
    if (await refuseOtherClientAuth(req, res, url)) return;
    providerCallback(req, res);
  } catch (err) {
    log('request failed:', err);
    if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `${err.message || err}\n`);
    else res.end();
  }
});

function stop(signal) {
  log(`${signal}: stopping`);
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

process.stdout.write(`${JSON.stringify({ ready: true, issuer, port })}\n`);
