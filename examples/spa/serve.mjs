// Serves the demo page (index.html beside this file) on SPA_PORT (default 5173).
// tokengate proxies `/` here with token = "none".
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.dirname(fileURLToPath(import.meta.url));
const port = Number(process.env.SPA_PORT ?? 5173);
const page = fs.readFileSync(path.join(dir, 'index.html'));

http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page);
  })
  .listen(port, '127.0.0.1', () => console.error(`demo page on http://127.0.0.1:${port}`));
