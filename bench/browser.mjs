// A browser's login, for the benchmark drivers: /bff/login → the test provider's form →
// credentials → /bff/callback, with a cookie jar of its own, so each login is a login of
// its own at the provider too. Every request has a 10-second limit.

// The session cookie's name: with an https public URL tokengate gives it the `__Host-Http-`
// prefix. (The jar below ignores the Secure attribute, which a browser would honour: the
// benchmarks only ever send these cookies back to the gateway that set them.)
export function sessionCookieName(gateway) {
  return gateway.startsWith('https:') ? '__Host-Http-tokengate' : 'tokengate';
}

// Logs in at `gateway` (tokengate's public URL, http or https); resolves to the session
// cookie's value.
export async function login(gateway, user = 'alice', password = 'alice-password') {
  const SESSION_COOKIE = sessionCookieName(gateway);
  const jar = new Map();
  const send = async (url, init = {}) => {
    const headers = { ...init.headers };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /max-age=0/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  };
  // Follows redirects by hand (a GET after every 3xx); returns the last response and URL.
  const follow = async (url, res) => {
    for (let hops = 0; hops < 20; hops++) {
      if (res.status < 300 || res.status >= 400) return { url, res };
      await res.arrayBuffer();
      url = new URL(res.headers.get('location'), url).href;
      res = await send(url);
    }
    throw new Error(`too many redirects, last at ${url}`);
  };

  const start = `${gateway}/bff/login?returnUrl=/`;
  const form = await follow(start, await send(start));
  const html = await form.res.text();
  const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
  if (form.res.status !== 200 || !action) throw new Error(`no login form at ${form.url} (${form.res.status})`);
  const post = new URL(action.replaceAll('&amp;', '&'), form.url).href;
  const body = new URLSearchParams({ login: user, password });
  const landed = await follow(post, await send(post, { method: 'POST', body }));
  await landed.res.arrayBuffer();
  const cookie = jar.get(SESSION_COOKIE);
  if (!cookie) throw new Error(`no session cookie after the login (landed at ${landed.url}, ${landed.res.status})`);
  return cookie;
}
