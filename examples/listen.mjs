// How the demo's small servers (the example API, the SPA's static server) listen: on
// 127.0.0.1, reporting `{"ready":true,"port":PORT}` on stdout once they do (port 0: a
// free one, so tests learn which), stopping on SIGTERM or SIGINT.

/** Listens with `server` on 127.0.0.1:`port`; `name` is for the error message. */
export function listen(server, port, name) {
  server.on('error', (err) => {
    console.error(`${name}: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ ready: true, port: server.address().port })}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
