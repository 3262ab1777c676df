import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { ozekiTime } from '../client/ozeki.ts';

const REQUEST_TIMEOUT_MS = 1000;
const BODY_LIMIT = 65536;

/** What the server sent before it ended the connection, and whether the client saw an error. */
interface Exchange {
  answer: string;
  error?: string;
  closedAfterMs: number;
}

/** Resolves when the connection ends, or after `withinMs` with `closedAfterMs` Infinity. */
function exchange(socket: net.Socket, withinMs = 10_000): Promise<Exchange> {
  const started = Date.now();
  let answer = '';
  let error: string | undefined;
  socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
  socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
  return new Promise((resolve) => {
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve({ answer, error, closedAfterMs: Infinity });
    }, withinMs);
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ answer, error, closedAfterMs: Date.now() - started });
    });
  });
}

function connect(base: string): Promise<net.Socket> {
  const socket = net.connect(Number(new URL(base).port), '127.0.0.1');
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Status and JSON body of a raw HTTP/1.1 answer. */
function parsed(answer: string): { status: number; body: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
  const text = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  return { status, body: text ? JSON.parse(text) : undefined };
}

/**
 * Writes `total` bytes of body at a steady pace (8 KiB every 10 ms), as a slow uplink would;
 * resolves to the bytes written before the server ended the connection.
 */
async function upload(socket: net.Socket, total: number, chunked: boolean): Promise<number> {
  const piece = Buffer.alloc(8 * 1024, 'x');
  let sent = 0;
  const open = () => !socket.destroyed && !socket.readableEnded;
  while (sent < total && open()) {
    const bytes = piece.subarray(0, Math.min(piece.length, total - sent));
    const frame = chunked ? Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]) : bytes;
    const written = await new Promise<boolean>((resolve) => socket.write(frame, (error) => resolve(!error)));
    if (!written) break;
    sent += bytes.length;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (chunked && open()) socket.write('0\r\n\r\n');
  return sent;
}

describe('the HTTP and HTTPS ports hold up against a hostile client', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(SQLITE, {
      HERALD_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HERALD_BODY_LIMIT: String(BODY_LIMIT),
    });
  });
  afterAll(async () => server?.stop());

  it('a connection to the HTTPS port that never starts its TLS handshake is closed within the request timeout', async () => {
    const socket = await connect(server.https);
    const { closedAfterMs } = await exchange(socket);
    expect(closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1500);
  });

  it('a connection that sends half a ClientHello and stops is closed within the request timeout', async () => {
    const socket = await connect(server.https);
    const closed = exchange(socket);
    // A handshake record header announcing 512 bytes, then only the first few of them.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    expect((await closed).closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1500);
  });

  for (const chunked of [false, true]) {
    it(`a client uploading three times the body limit ${chunked ? 'in chunks' : 'with its Content-Length'} reads the 413`, async () => {
      const socket = await connect(server.http);
      const done = exchange(socket);
      const total = 3 * BODY_LIMIT;
      socket.write(
        `POST /?srv=chatserver&api=chatconversation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          (chunked ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${total}\r\n`) +
          '\r\n',
      );
      // The whole body goes out before the server answers and closes: nothing is cut off
      // mid-upload (which makes clients see a reset instead of the answer).
      expect(await upload(socket, total, chunked)).toBe(total);
      const { answer, error, closedAfterMs } = await done;
      expect(error).toBeUndefined();
      expect(closedAfterMs).toBeLessThan(Infinity);
      expect(parsed(answer)).toEqual({
        status: 413,
        body: { status: 'ERROR', errormessage: `the request body is larger than ${BODY_LIMIT} bytes` },
      });
    });
  }

  it('a body within the limit is still taken, chunked or not', async () => {
    for (const chunked of [false, true]) {
      const socket = await connect(server.http);
      const done = exchange(socket);
      const body = JSON.stringify({ action: 'list', clientversioncode: 3, timestamp: ozekiTime() });
      const framed = chunked ? `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n` : body;
      socket.write(
        `POST /?srv=chatserver&api=chatfriends HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n` +
          (chunked ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${Buffer.byteLength(body)}\r\n`) +
          `\r\n${framed}`,
      );
      // Past the body limit check: the call is refused for its missing station, not its size.
      const { answer } = await done;
      expect({ chunked, ...parsed(answer) }).toEqual({
        chunked,
        status: 401,
        body: { status: 'ERROR', errormessage: 'the Ozeki-Station header is missing' },
      });
    }
  });
});
