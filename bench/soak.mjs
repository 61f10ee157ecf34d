// The soak's traffic: USERS virtual users, each in a loop for DURATION seconds — log in
// through the provider's form, call the API and /bff/user CALLS times (a short pause
// between calls, so access tokens fall due and refresh under way), log out, and check
// that the ended session's cookie is refused. Counts every answer; prints one JSON line:
// {"logins","calls","logouts","intended_401","unexpected":[…first few…],"unexpected_count"}.
//
//   node bench/soak.mjs GATEWAY_URL DURATION USERS CALLS PAUSE_MS

import { login } from './browser.mjs';

const [gateway, duration = '600', users = '20', calls = '40', pauseMs = '250'] = process.argv.slice(2);
const until = Date.now() + Number(duration) * 1000;
const counts = { logins: 0, calls: 0, logouts: 0, intended_401: 0, unexpected_count: 0 };
const unexpected = [];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function surprise(what) {
  counts.unexpected_count++;
  if (unexpected.length < 10) unexpected.push(what);
}

async function call(path, cookie, init = {}) {
  return fetch(`${gateway}${path}`, {
    ...init,
    redirect: 'manual',
    headers: { cookie: `tokengate=${cookie}`, 'x-csrf': '1', ...init.headers },
    signal: AbortSignal.timeout(10_000),
  });
}

async function user(n) {
  const name = n % 2 ? 'bob' : 'alice';
  while (Date.now() < until) {
    let cookie;
    try {
      cookie = await login(gateway, name, `${name}-password`);
      counts.logins++;
    } catch (err) {
      surprise(`login: ${err.message}`);
      await sleep(1000);
      continue;
    }
    for (let i = 0; i < Number(calls) && Date.now() < until; i++) {
      for (const path of ['/api/items', '/bff/user']) {
        try {
          const res = await call(path, cookie);
          const text = await res.text();
          if (res.status === 200) counts.calls++;
          else surprise(`${path}: ${res.status} ${text.slice(0, 200)}`);
        } catch (err) {
          surprise(`${path}: ${err.message}`);
        }
      }
      await sleep(Number(pauseMs));
    }
    try {
      const out = await call('/bff/logout', cookie, { method: 'POST' });
      await out.arrayBuffer();
      if (out.status === 302) counts.logouts++;
      else surprise(`logout: ${out.status}`);
      const after = await call('/api/items', cookie);
      await after.arrayBuffer();
      if (after.status === 401) counts.intended_401++;
      else surprise(`after logout: ${after.status}`);
    } catch (err) {
      surprise(`logout: ${err.message}`);
    }
  }
}

await Promise.all(Array.from({ length: Number(users) }, (_, n) => user(n)));
console.log(JSON.stringify({ ...counts, unexpected }));
