/**
 * A process of receiving devices: opens many WebSocket (or socket.io) connections, spread
 * over several loopback source addresses, and counts the chat-message frames they get.
 * Used for Herald, the bare ws ceiling and the socket.io peer alike, so the client side
 * costs the same for all three.
 */
import WebSocket from 'ws';
import { io, type Socket } from 'socket.io-client';
import { serveParent, wallNow } from '../lib/ipc.ts';

/** Frames that count: a chat message notification (Herald's frame, and the baselines' copy of it). */
const MESSAGE_MARK = Buffer.from('"kind":"message"');

type Connection = { close(): void };
const connections: Connection[] = [];

let expected = Infinity;
let received = 0;
let bytes = 0;
let firstAt = 0;
let lastAt = 0;
let otherFrames = 0;
let closedEarly = 0;
let done: (() => void) | undefined;

function onFrame(data: Buffer | string): void {
  const isMessage = typeof data === 'string' ? data.includes('"kind":"message"') : data.indexOf(MESSAGE_MARK) !== -1;
  if (!isMessage) {
    otherFrames++;
    return;
  }
  const now = wallNow();
  if (received === 0) firstAt = now;
  lastAt = now;
  received++;
  bytes += data.length;
  if (received >= expected && done) {
    done();
    done = undefined;
  }
}

interface ConnectArgs {
  kind: 'ws' | 'socketio';
  urls: string[];
  localAddresses: string[];
  /** Connections opened at once. */
  concurrency?: number;
  timeoutMs?: number;
}

function openWs(url: string, localAddress: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { localAddress, perMessageDeflate: false });
    const fail = (error: Error) => reject(error);
    socket.once('error', fail);
    socket.once('open', () => {
      socket.off('error', fail);
      socket.on('error', () => {});
      socket.on('close', () => closedEarly++);
      resolve({
        close: () => {
          socket.removeAllListeners('close');
          socket.terminate();
        },
      });
    });
    socket.on('message', (data: Buffer) => onFrame(data));
  });
}

function openSocketIo(url: string, localAddress: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket: Socket = io(url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      localAddress,
    } as Parameters<typeof io>[1]);
    socket.on('notification', (frame: string) => onFrame(frame));
    socket.once('connect_error', (error) => reject(error));
    socket.once('connect', () => {
      socket.on('disconnect', () => closedEarly++);
      resolve({
        close: () => {
          socket.removeAllListeners('disconnect');
          socket.disconnect();
        },
      });
    });
  });
}

async function connect(args: ConnectArgs) {
  const started = Date.now();
  const deadline = started + (args.timeoutMs ?? 120_000);
  const open = args.kind === 'ws' ? openWs : openSocketIo;
  let next = 0;
  let failed = 0;
  let lastError = '';
  const worker = async () => {
    while (next < args.urls.length && Date.now() < deadline) {
      const i = next++;
      try {
        connections.push(await open(args.urls[i], args.localAddresses[i % args.localAddresses.length]));
      } catch (error) {
        failed++;
        lastError = (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency ?? 100 }, worker));
  return { connected: connections.length, failed, lastError, ms: Date.now() - started };
}

serveParent({
  connect,
  /** Starts counting afresh; `count` frames complete the wait. */
  arm({ count }: { count: number }) {
    expected = count;
    received = 0;
    bytes = 0;
    firstAt = 0;
    lastAt = 0;
    otherFrames = 0;
    return {};
  },
  wait({ timeoutMs }: { timeoutMs: number }) {
    return new Promise((resolve) => {
      const answer = () => {
        clearTimeout(timer);
        resolve({ received, expected, firstAt, lastAt, bytes, otherFrames, closedEarly, complete: received >= expected });
      };
      const timer = setTimeout(answer, timeoutMs);
      if (received >= expected) answer();
      else done = answer;
    });
  },
  count() {
    return { received, otherFrames, closedEarly, open: connections.length };
  },
  close() {
    for (const connection of connections.splice(0)) connection.close();
    return {};
  },
  stop() {
    for (const connection of connections.splice(0)) connection.close();
  },
});
