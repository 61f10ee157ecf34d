// Logs sessions in through tokengate and the test provider's login form, the way a
// browser does: /bff/login → the provider's form → credentials → /bff/callback.
// Prints each session cookie's value on a line of its own, in the order the logins end.
//
//   node bench/login.mjs GATEWAY_URL [COUNT] [PARALLEL] [USER] [PASSWORD]
//
// GATEWAY_URL is tokengate's public URL: plain http, the cookie is `tokengate`; https, it
// is `__Host-Http-tokengate` (a self-signed certificate needs NODE_TLS_REJECT_UNAUTHORIZED=0).
// COUNT logins (default 1) run at most PARALLEL at a time (default 16), each a login of
// its own (bench/browser.mjs); any failure ends the run with exit code 1.

import { login } from './browser.mjs';

const [gateway, count = '1', parallel = '16', user = 'alice', password = 'alice-password'] = process.argv.slice(2);
if (!gateway) {
  console.error('usage: node bench/login.mjs GATEWAY_URL [COUNT] [PARALLEL] [USER] [PASSWORD]');
  process.exit(2);
}

let next = 0;
const total = Number(count);
async function worker() {
  while (next < total) {
    next++;
    process.stdout.write(`${await login(gateway, user, password)}\n`);
  }
}
try {
  await Promise.all(Array.from({ length: Math.min(Number(parallel), total) }, worker));
} catch (err) {
  // fetch's own message ("fetch failed") says nothing of the cause; its cause does.
  const cause = err.cause ? ` (${err.cause.code ?? err.cause.message})` : '';
  console.error(`login failed: ${err.message}${cause}`);
  process.exit(1);
}
