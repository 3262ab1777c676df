/**
 * A bare HTTP server for bench/micro/request-floor.ts: `node:http` or Fastify answering
 * GET /healthz with a small JSON body, reporting its CPU time over IPC.
 */
import http from 'node:http';
import Fastify from 'fastify';

const kind = process.argv[2];
let port: number;
if (kind === 'fastify') {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
} else {
  const server = http.createServer((_request, response) => {
    response.setHeader('content-type', 'application/json; charset=utf-8');
    response.end('{"status":"ok"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
}
process.send!({ port });
process.on('message', (message) => {
  if (message === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send!({ cpu: user + system });
  } else process.exit(0);
});
