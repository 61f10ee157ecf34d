// The demo's example API. It stands for your own API behind tokengate: it receives
// `Authorization: Bearer <access token>` from the gateway, verifies the token's signature
// against the provider's published keys, and answers with the token's claims — never the
// token itself. Node.js built-ins only (and ../listen.mjs).
//
//   API_PORT   port on 127.0.0.1 (default 9100; 0: a free one)
//   OP_ISSUER  the provider's issuer (default http://localhost:9000)
//
// Once it listens it prints one line to stdout: {"ready":true,"port":PORT}.
import http from 'node:http';
import crypto from 'node:crypto';

import { listen } from '../listen.mjs';

const port = Number(process.env.API_PORT ?? 9100);
const issuer = process.env.OP_ISSUER ?? 'http://localhost:9000';
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

const server = http.createServer(async (req, res) => {
  const auth = req.headers.authorization ?? '';
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body, null, 2));
  };
  if (!auth.startsWith('Bearer ')) return reply(401, { error: 'no bearer token' });
  try {
    const claims = await verify(auth.slice(7));
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
  } catch (e) {
    reply(401, { error: `token rejected: ${e.message}` });
  }
});
listen(server, port, 'example API');
