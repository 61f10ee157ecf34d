// The load of the refresh storm: PER_SESSION requests for each session cookie read from
// stdin, sent in order over CONNS keep-alive connections — the requests of one session
// back to back, so they arrive together and must share one refresh. Prints one line of
// JSON: requests, failed (any status but 200, or an error), seconds from the first
// request to the last answer, requests/s, and p50/p99 latency in milliseconds.
//
//   node bench/storm.mjs URL PER_SESSION CONNS < cookies
import http from 'node:http';

const [url, perSession = '4', conns = '64'] = process.argv.slice(2);
const cookies = (await new Response(process.stdin).text()).split('\n').filter(Boolean);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conns) });
const queue = cookies.flatMap((c) => Array(Number(perSession)).fill(c));
const latencies = [];
let failed = 0;

function get(cookie) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, headers: { cookie: `tokengate=${cookie}`, 'x-csrf': '1' }, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

let next = 0;
async function connection() {
  while (next < queue.length) {
    const cookie = queue[next++];
    const t0 = process.hrtime.bigint();
    const status = await get(cookie);
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (status !== 200) failed++;
  }
}

const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: Number(conns) }, connection));
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
agent.destroy();
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
console.log(JSON.stringify({
  requests: latencies.length,
  failed,
  seconds: +seconds.toFixed(3),
  rps: Math.round(latencies.length / seconds),
  p50_ms: +pct(50).toFixed(2),
  p99_ms: +pct(99).toFixed(2),
}));
