/**
 * Micro-benchmark (not part of `npm run bench`): what sending one fan-out frame costs the
 * server, through `ws`'s `send` or written whole on the TCP socket (src/channels/live/
 * ws-frame.ts). N clients in a child process hold connections to a server in this process;
 * each round sends every client MESSAGES frames of FRAME bytes, each client its own text as in
 * a fan-out, with the sockets corked per message as the hub's dispatch does. Rounds alternate
 * between the two ways; printed: this process's CPU time per frame, per round.
 * Usage: node --import tsx bench/micro/ws-send.ts  (N=2000 MESSAGES=50 FRAME=350 ROUNDS=8)
 */
import { fork } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { wholeFrame, writeWhole } from '../../src/channels/live/ws-frame.ts';

const N = Number(process.env.N ?? 2000);
const MESSAGES = Number(process.env.MESSAGES ?? 50);
const FRAME = Number(process.env.FRAME ?? 350);
const ROUNDS = Number(process.env.ROUNDS ?? 8);

if (process.env.WS_SEND_CLIENT) {
  const url = process.env.WS_SEND_CLIENT;
  let received = 0;
  let expected = Infinity;
  const sockets: WebSocket[] = [];
  let open = 0;
  for (let i = 0; i < N; i++) {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    socket.on('open', () => {
      if (++open === N) process.send!({ open });
    });
    socket.on('message', () => {
      if (++received === expected) process.send!({ received });
    });
    sockets.push(socket);
  }
  process.on('message', (message: { expect?: number; stop?: boolean }) => {
    if (message.stop) {
      for (const socket of sockets) socket.terminate();
      process.exit(0);
    }
    received = 0;
    expected = message.expect!;
  });
} else {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise((resolve) => wss.once('listening', resolve));
  const { port } = wss.address() as AddressInfo;
  const clients: WebSocket[] = [];
  wss.on('connection', (socket) => clients.push(socket));
  const child = fork(new URL(import.meta.url), [], {
    env: { ...process.env, WS_SEND_CLIENT: `ws://127.0.0.1:${port}` },
    execArgv: ['--import', 'tsx'],
  });
  const next = () => new Promise<void>((resolve) => child.once('message', () => resolve()));
  await next();
  while (clients.length < N) await new Promise((resolve) => setImmediate(resolve));

  const filler = 'x'.repeat(Math.max(0, FRAME - 60));
  const texts = (m: number) => clients.map((_, i) => `{"type":"notification","seq":${m},"n":${i},"body":"${filler}"}`);
  const raw = (socket: WebSocket) => (socket as unknown as { _socket: Duplex })._socket;

  for (let round = 0; round < ROUNDS; round++) {
    const whole = round % 2 === 1;
    const messages = Array.from({ length: MESSAGES }, (_, m) => texts(m));
    const arrived = next();
    child.send({ expect: N * MESSAGES });
    const before = process.cpuUsage();
    for (const frames of messages) {
      for (let i = 0; i < clients.length; i++) {
        const socket = raw(clients[i]);
        socket.cork();
        if (whole) writeWhole(clients[i], wholeFrame(frames[i]));
        else clients[i].send(Buffer.from(frames[i]), { binary: false });
        process.nextTick(() => socket.uncork());
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    await arrived;
    const used = process.cpuUsage(before);
    const perFrame = (used.user + used.system) / (N * MESSAGES);
    const user = used.user / (N * MESSAGES);
    console.log(`round ${round + 1} ${whole ? 'whole' : 'ws   '}: ${perFrame.toFixed(2)} µs per frame (user ${user.toFixed(2)})`);
  }
  child.send({ stop: true });
  wss.close();
}
