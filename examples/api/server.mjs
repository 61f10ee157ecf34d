// The demo's example API. It stands for your own API behind tokengate: it receives
// `Authorization: Bearer <access token>` from the gateway, verifies the token's signature
// against the provider's published keys, and answers with the token's claims — never the
// token itself. Node.js built-ins, ../listen.mjs, and the `ws` package for WebSockets
// (`npm ci` here first; scripts/demo and scripts/test do it).
//
//   any path        the token's claims and what else arrived with the request
//   /api/payments   the same, but only for a sign-in with a second factor (the token's
//                   `acr`); otherwise 401 with an RFC 9470 challenge, which tokengate turns
//                   into `step_up_required` for the SPA
//   /api/feed       a WebSocket (through a route with `websocket = true`): a tick every
//                   second, and an echo of every message; each carries the token's `sub`
//
//   API_PORT   port on 127.0.0.1 (default 9100; 0: a free one)
//   OP_ISSUER  the provider's issuer (default http://localhost:9000)
//
// Once it listens it prints one line to stdout: {"ready":true,"port":PORT}.
import http from 'node:http';
import crypto from 'node:crypto';

import { WebSocketServer } from 'ws';

import { listen } from '../listen.mjs';

const port = Number(process.env.API_PORT ?? 9100);
const issuer = process.env.OP_ISSUER ?? 'http://localhost:9000';
/** The sign-in /api/payments wants: the test provider's password and one-time code. */
const ACR_MFA = 'urn:tokengate:mfa';
let keys = new Map();

async function loadKeys() {
  const meta = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const jwks = await (await fetch(meta.jwks_uri)).json();
  keys = new Map(jwks.keys.map((k) => [k.kid, crypto.createPublicKey({ key: k, format: 'jwk' })]));
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function verify(token) {
  const [h, p, s] = token.split('.');
  if (!s) throw new Error('not a JWT');
  const header = b64json(h);
  if (header.alg !== 'RS256') throw new Error(`unexpected alg ${header.alg}`);
  if (!keys.has(header.kid)) await loadKeys();
  const key = keys.get(header.kid);
  if (!key) throw new Error('unknown signing key');
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  if (!ok) throw new Error('bad signature');
  const claims = b64json(p);
  if (claims.iss !== issuer) throw new Error('wrong issuer');
  if (claims.exp * 1000 < Date.now()) throw new Error('expired');
  return claims;
}

/** The verified claims of the request's bearer token, or the 401 body saying why not. */
async function authenticate(req) {
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ')) return { error: 'no bearer token' };
  try {
    return { claims: await verify(auth.slice(7)) };
  } catch (e) {
    return { error: `token rejected: ${e.message}` };
  }
}

const server = http.createServer(async (req, res) => {
  const reply = (status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body, null, 2));
  };
  const { claims, error } = await authenticate(req);
  if (error) return reply(401, { error });
  // Step-up (RFC 9470): the token is good, the sign-in behind it is not strong enough.
  if (new URL(req.url, 'http://api').pathname === '/api/payments' && claims.acr !== ACR_MFA) {
    const challenge = `Bearer error="insufficient_user_authentication", error_description="payments need a second factor", acr_values="${ACR_MFA}"`;
    return reply(401, { error: 'insufficient_user_authentication' }, { 'www-authenticate': challenge });
  }
  reply(200, {
    message: `Hello ${claims.sub}, this is the example API.`,
    request: { method: req.method, path: req.url },
    token_claims: claims,
    token_seconds_left: claims.exp - Math.floor(Date.now() / 1000),
    // What else arrived with the request: the gateway's own cookie is never among it.
    cookies_received: req.headers.cookie ?? null,
    forwarded: {
      for: req.headers['x-forwarded-for'] ?? null,
      proto: req.headers['x-forwarded-proto'] ?? null,
      host: req.headers['x-forwarded-host'] ?? null,
    },
  });
});

// === /api/feed: a WebSocket =============================================================

// The token is checked once, on the upgrade request, like any other request; the gateway
// closes the tunnel when the browser's session ends. Frames carry the token's `sub`,
// never the token.
const feed = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });

server.on('upgrade', async (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  const refuse = (status, reason, body) => {
    const text = JSON.stringify(body);
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n`
      + `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  };
  if (new URL(req.url, 'http://api').pathname !== '/api/feed') return refuse(404, 'Not Found', { error: 'no WebSocket here' });
  const { claims, error } = await authenticate(req);
  if (error) return refuse(401, 'Unauthorized', { error });
  feed.handleUpgrade(req, socket, head, (ws) => openFeed(ws, claims));
});

function openFeed(ws, claims) {
  const send = (message) => ws.send(JSON.stringify({ ...message, sub: claims.sub }));
  let n = 0;
  const tick = () => send({ type: 'tick', n: ++n, at: new Date().toISOString() });
  tick();
  const timer = setInterval(tick, 1000);
  ws.on('message', (data, isBinary) => {
    if (!isBinary) send({ type: 'echo', text: data.toString('utf8') });
  });
  ws.on('close', () => clearInterval(timer));
  ws.on('error', () => ws.terminate());
}

// listen() closes the server on SIGTERM/SIGINT, which waits for every connection: end the
// feeds too.
const endFeeds = () => {
  for (const ws of feed.clients) ws.terminate();
};
process.on('SIGTERM', endFeeds);
process.on('SIGINT', endFeeds);

listen(server, port, 'example API');
