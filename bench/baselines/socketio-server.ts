/**
 * The peer: socket.io (WebSocket transport only). Each POST /send emits every connected
 * client its own frame, the same shape and size as Herald's.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { FrameMaker, readBody } from '../lib/frame.ts';
import { serveParent, settledRss } from '../lib/ipc.ts';

const clients = new Set<Socket>();
let frames = new FrameMaker(280);
let seq = 0;

const server = http.createServer(async (request, response) => {
  if (request.method === 'POST' && request.url === '/send') {
    await readBody(request);
    seq++;
    let recipient = 0;
    for (const client of clients) client.emit('notification', frames.make(seq, recipient++));
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"OK"}');
    return;
  }
  if (!request.url?.startsWith('/socket.io/')) response.writeHead(404).end();
});
const ioServer = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
ioServer.on('connection', (socket) => {
  clients.add(socket);
  socket.on('disconnect', () => clients.delete(socket));
});

serveParent({
  async listen() {
    // As long as Fastify keeps an idle keep-alive connection (72 s), so the sender's pooled
    // connections survive the pauses between runs the same way on every server.
    server.keepAliveTimeout = 72_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { http: `http://127.0.0.1:${port}`, ws: `http://127.0.0.1:${port}` };
  },
  configure({ frameBytes }: { frameBytes: number }) {
    frames = new FrameMaker(frameBytes);
    return {};
  },
  connections: () => clients.size,
  rss: () => settledRss(),
  /** CPU time this process has used so far (user + system), in microseconds. */
  cpu: () => {
    const { user, system } = process.cpuUsage();
    return user + system;
  },
  stop() {
    ioServer.close();
  },
});
