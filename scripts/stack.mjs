// The demo stack: the test OpenID Provider, the example API, the example SPA's server and
// tokengate in front of them, all on this machine's loopback. Node.js built-ins only.
//
// Two users share it:
//   - `scripts/demo` runs it as a program (`node scripts/stack.mjs`) on the addresses that
//     config/tokengate.toml names, and keeps it up until Ctrl-C;
//   - the browser end-to-end test imports `startStack` and runs the same pieces on free
//     ports, with config/tokengate.toml rewritten to name them.
//
// config/tokengate.toml is the one source of the addresses: the gateway's `listen`,
// `admin_listen` and `public_url`, the provider's `issuer` (its host and port), and the
// upstreams of the `/api` and `/` routes (the example API and the SPA).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CONFIG = path.join(ROOT, 'config', 'tokengate.toml');
/** The demo client's secret: the provider registers it, tokengate sends it. */
const CLIENT_SECRET = 'gateway-secret';

// === The addresses in config/tokengate.toml =============================================

// `key = "value"` lines of the keys the stack must know. Each is unique in the file except
// `path` and `upstream`, which are read per [[route]] table.
const line = (key) => new RegExp(`^(${key}\\s*=\\s*)"([^"]*)"`, 'm');

/** The addresses config/tokengate.toml names, or an error naming what is missing. */
export function readAddresses(text) {
  const get = (key) => {
    const m = text.match(line(key));
    if (!m) throw new Error(`config/tokengate.toml has no ${key} = "…" line`);
    return m[2];
  };
  const routes = {};
  for (const table of text.split(/^\[\[route\]\]\s*$/m).slice(1)) {
    const p = table.match(line('path'))?.[2];
    const upstream = table.match(line('upstream'))?.[2];
    if (p && upstream) routes[p] = upstream;
  }
  for (const p of ['/api', '/']) {
    if (!routes[p]) throw new Error(`config/tokengate.toml has no [[route]] with path = "${p}" and an upstream`);
  }
  return {
    listen: get('listen'),
    admin_listen: get('admin_listen'),
    public_url: get('public_url'),
    issuer: get('issuer'),
    api: routes['/api'],
    spa: routes['/'],
  };
}

/** config/tokengate.toml with its addresses replaced by those of `to`. */
export function rewriteAddresses(text, from, to) {
  let out = text;
  for (const key of ['listen', 'admin_listen', 'public_url', 'issuer']) {
    out = out.replace(line(key), (_m, lhs) => `${lhs}"${to[key]}"`);
  }
  for (const key of ['api', 'spa']) {
    const before = `upstream = "${from[key]}"`;
    if (!out.includes(before)) throw new Error(`cannot find ${before} in the configuration`);
    out = out.replace(before, `upstream = "${to[key]}"`);
  }
  return out;
}

const portOf = (url) => Number(new URL(url).port);

/** A port that was free a moment ago on 127.0.0.1 (for tokengate, which needs its port
 *  before it starts: its public_url names it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// === Processes ===========================================================================

// Every child still running. Should this process end any other way than through stop()
// (an uncaught error, process.exit), they are ended with it rather than left behind.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A child process whose stdout's first line is `{"ready":true,…}` (the provider, the API,
 *  the SPA server) or that becomes ready when `readyUrl` answers 200 (tokengate). Its
 *  output goes to `<logDir>/<name>.log`, unless `inherit` shows it on this terminal. */
class Piece {
  constructor(name, command, args, { env, cwd, logDir, inherit = false }) {
    this.name = name;
    this.log = path.join(logDir, `${name}.log`);
    const out = fs.openSync(this.log, 'a');
    // A process group of its own: Ctrl-C at the terminal reaches this process only, which
    // then stops the pieces in order (tokengate first, so it can drain).
    this.child = spawn(command, args, {
      cwd: cwd ?? ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', inherit ? 'inherit' : out],
      detached: true,
    });
    fs.closeSync(out);
    running.add(this.child);
    this.child.on('exit', () => running.delete(this.child));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    this.done = false;
    this.exited.then(() => {
      this.done = true;
    });
    this.stdout = '';
    this.child.stdout.on('data', (d) => {
      if (inherit) process.stderr.write(d);
      this.stdout += d;
      fs.appendFileSync(this.log, d);
    });
  }

  /** The parsed ready line; rejects when the process exits first or `ms` pass. */
  readyLine(ms) {
    return this.deadline(ms, 'print its ready line', (resolve, reject) => {
      const check = () => {
        const nl = this.stdout.indexOf('\n');
        if (nl < 0) return false;
        try {
          resolve(JSON.parse(this.stdout.slice(0, nl)));
        } catch {
          reject(new Error(`${this.name} printed ${JSON.stringify(this.stdout.slice(0, nl))}, not a ready line`));
        }
        return true;
      };
      if (!check()) this.child.stdout.on('data', check);
    });
  }

  /** Resolves once `url` answers 200; rejects when the process exits first or `ms` pass. */
  readyUrl(url, ms) {
    return this.deadline(ms, `answer 200 at ${url}`, (resolve) => {
      const poll = async () => {
        if (this.done) return;
        try {
          if ((await fetch(url)).ok) return resolve();
        } catch {
          // not listening yet
        }
        setTimeout(poll, 100);
      };
      poll();
    });
  }

  deadline(ms, what, body) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not ${what} within ${ms / 1000} s${this.tail()}`)), ms);
      this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${signal ?? `code ${code}`}) before it was ready${this.tail()}`));
      });
      body(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  tail() {
    const text = fs.existsSync(this.log) ? fs.readFileSync(this.log, 'utf8').trim() : '';
    return text ? `\n--- last lines of ${this.log}\n${text.split('\n').slice(-15).join('\n')}` : '';
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs) {
    if (this.done) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

// === The stack ===========================================================================

/**
 * Starts the provider, the example API, the SPA server and tokengate; resolves when all
 * four are ready. Options:
 *   bin       the tokengate binary
 *   logDir    where each process's output goes (`<name>.log`)
 *   free      true: every piece on a free port, the configuration rewritten into logDir
 *             (and tokengate run there, so relative store paths stay inside it); false:
 *             the addresses of config/tokengate.toml, tokengate run from the repository
 *   progress  function(message) told what is starting
 *   inheritGateway  show tokengate's log on this terminal (the demo)
 */
export async function startStack({ bin, logDir, free = true, progress = () => {}, inheritGateway = false }) {
  const text = fs.readFileSync(CONFIG, 'utf8');
  const want = readAddresses(text);
  const issuerHost = new URL(want.issuer).hostname;
  const pieces = [];
  const stack = {
    pieces,
    async stop() {
      // tokengate first (it drains in-flight requests), then what it depends on.
      for (const piece of [...pieces].reverse()) await piece.stop(15000);
    },
  };
  const start = (name, command, args, opts) => {
    const piece = new Piece(name, command, args, { logDir, ...opts });
    pieces.push(piece);
    return piece;
  };
  try {
    if (!fs.existsSync(path.join(ROOT, 'examples/api/node_modules/ws'))) {
      throw new Error('the example API\'s packages are not installed: run `npm ci` in examples/api (scripts/demo and scripts/test do)');
    }
    const gatewayPort = free ? await freePort() : portOf(want.public_url);
    const adminPort = free ? await freePort() : Number(want.admin_listen.split(':').pop());
    const publicUrl = free ? `http://127.0.0.1:${gatewayPort}` : want.public_url;

    progress(`starting the OpenID Provider (${issuerHost})`);
    const op = start('provider', process.execPath, [path.join(ROOT, 'tests/op/server.mjs')], {
      env: {
        OP_HOST: issuerHost,
        OP_PORT: String(free ? 0 : portOf(want.issuer)),
        OP_CLIENT_SECRET: CLIENT_SECRET,
        OP_REDIRECT_URIS: `${publicUrl}/bff/callback`,
        OP_POST_LOGOUT_REDIRECT_URIS: `${publicUrl}/`,
      },
    });
    const { issuer } = await op.readyLine(30000);

    progress('starting the example API and the SPA server');
    const api = start('api', process.execPath, [path.join(ROOT, 'examples/api/server.mjs')], {
      env: { API_PORT: String(free ? 0 : portOf(want.api)), OP_ISSUER: issuer },
    });
    const spa = start('spa', process.execPath, [path.join(ROOT, 'examples/spa/serve.mjs')], {
      env: { SPA_PORT: String(free ? 0 : portOf(want.spa)) },
    });
    const [apiReady, spaReady] = await Promise.all([api.readyLine(15000), spa.readyLine(15000)]);

    let config = CONFIG;
    let cwd = ROOT;
    if (free) {
      const to = {
        listen: `127.0.0.1:${gatewayPort}`,
        admin_listen: `127.0.0.1:${adminPort}`,
        public_url: publicUrl,
        issuer,
        api: `http://127.0.0.1:${apiReady.port}`,
        spa: `http://127.0.0.1:${spaReady.port}`,
      };
      config = path.join(logDir, 'tokengate.toml');
      fs.writeFileSync(config, rewriteAddresses(text, want, to));
      cwd = logDir;
    }

    progress('starting tokengate');
    const key = await output(bin, ['keygen']);
    const gateway = start('tokengate', bin, ['run', '--config', config], {
      cwd,
      env: { TOKENGATE_CLIENT_SECRET: CLIENT_SECRET, TOKENGATE_KEY: key },
      inherit: inheritGateway,
    });
    const admin = `http://127.0.0.1:${adminPort}`;
    await gateway.readyUrl(`${admin}/readyz`, 60000);

    return Object.assign(stack, { url: publicUrl, admin, issuer, config });
  } catch (err) {
    await stack.stop();
    throw err;
  }
}

function output(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${command} ${args.join(' ')} exited ${code}`))));
  });
}

// === `node scripts/stack.mjs`: the demo ===================================================

async function demo() {
  const bin = process.env.TOKENGATE_BIN;
  if (!bin) throw new Error('TOKENGATE_BIN must name the tokengate binary (scripts/demo sets it)');
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-demo-'));
  const began = Date.now();
  const say = (msg) => process.stderr.write(`\x1b[1m==> ${msg}\x1b[0m\n`);

  let stack;
  let stopping = false;
  const stopAll = async (code) => {
    if (stopping) return;
    stopping = true;
    say('stopping');
    await stack?.stop();
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));

  try {
    stack = await startStack({ bin, logDir, free: false, progress: say, inheritGateway: true });
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    await stopAll(1);
    return;
  }
  const secs = ((Date.now() - began) / 1000).toFixed(1);
  process.stderr.write(`
  tokengate is ready (started in ${secs} s).

    Open      ${stack.url}
    Log in    alice / alice-password   (or bob / bob-password)
    Provider  ${stack.issuer}
    Metrics   ${stack.admin}/metrics
    Logs      ${logDir}

  Press Ctrl-C to stop everything.

`);
  const first = await Promise.race(stack.pieces.map((p) => p.exited.then(() => p)));
  if (!stopping) {
    process.stderr.write(`${first.name} exited; stopping the rest${first.tail()}\n`);
    await stopAll(1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await demo();
}
