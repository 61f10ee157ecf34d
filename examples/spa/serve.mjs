// A small static server for the built example SPA: public/ (the page and its styles) and
// dist/ (the compiled TypeScript, `npm run build`). Paths without a file extension get the
// page itself, as an SPA's client-side routes should. Node.js built-ins only.
//
//   SPA_PORT   port on 127.0.0.1 (default 5173; 0: a free one)
//
// Once it listens it prints one line to stdout: {"ready":true,"port":PORT}.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { listen } from '../listen.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const roots = [path.join(here, 'public'), path.join(here, 'dist')];
const port = Number(process.env.SPA_PORT ?? 5173);
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

if (!fs.existsSync(path.join(here, 'dist', 'main.js'))) {
  console.error('the example SPA is not built: run `npm ci && npm run build` in examples/spa');
  process.exit(1);
}

// The file for a URL path inside one of the roots, or null. `..` cannot climb out: the
// path is normalised as an absolute URL path before it is joined.
function find(urlPath) {
  const clean = path.posix.normalize(decodeURIComponent(urlPath));
  for (const root of roots) {
    const file = path.join(root, clean);
    if (file.startsWith(root + path.sep) && fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return file;
  }
  return null;
}

function send(res, status, type, body, cache = 'no-store') {
  res.writeHead(status, { 'content-type': type, 'cache-control': cache, 'x-content-type-options': 'nosniff' });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
  let urlPath;
  try {
    urlPath = new URL(req.url, 'http://spa').pathname;
    decodeURIComponent(urlPath);
  } catch {
    return send(res, 400, 'text/plain', 'bad path\n');
  }
  const file = find(urlPath);
  if (file) return send(res, 200, TYPES[path.extname(file)] ?? 'application/octet-stream', fs.readFileSync(file));
  if (path.posix.extname(urlPath)) return send(res, 404, 'text/plain', 'not found\n');
  send(res, 200, TYPES['.html'], fs.readFileSync(path.join(here, 'public', 'index.html')));
});
listen(server, port, 'example SPA');
