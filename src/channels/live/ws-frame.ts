import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';

/**
 * A live frame written whole: the WebSocket header and the text in one Buffer, made once per
 * notification and written as it is on the TCP socket of each of its user's connections.
 * `ws`'s own send makes a header Buffer, an options object and two socket writes per frame;
 * in a fan-out that is per recipient. A server's frames are not masked (RFC 6455, 5.1), so
 * the bytes are the same for every connection.
 *
 * The socket is written directly only while `ws` itself would write at once: the connection
 * is open and its sender holds nothing queued (it queues only while compressing, which live
 * connections do not, or while reading a Blob, which Herald never sends). Otherwise the frame
 * goes through `ws.send`, which keeps its order with what it holds.
 *
 * HERALD_NO_WHOLE_FRAMES=1 turns it off (read once at load): every frame goes through `ws.send`.
 */
export const WHOLE_FRAMES = process.env.HERALD_NO_WHOLE_FRAMES !== '1';

/** A text frame's bytes: header, then payload from `payloadAt`. */
export interface WholeFrame {
  readonly bytes: Buffer;
  readonly payloadAt: number;
}

const FIN_TEXT = 0x81;

/** The whole unmasked text frame (FIN set, one fragment) carrying `text`. */
export function wholeFrame(text: string): WholeFrame {
  const length = Buffer.byteLength(text);
  const payloadAt = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const bytes = Buffer.allocUnsafe(payloadAt + length);
  bytes[0] = FIN_TEXT;
  if (payloadAt === 2) {
    bytes[1] = length;
  } else if (payloadAt === 4) {
    bytes[1] = 126;
    bytes.writeUInt16BE(length, 2);
  } else {
    bytes[1] = 127;
    bytes.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    bytes.writeUInt32BE(length % 0x100000000, 6);
  }
  bytes.write(text, payloadAt);
  return { bytes, payloadAt };
}

/** What of `ws`'s connection this module reads: its TCP socket and its sender's state. */
interface WsInternals {
  _socket?: Duplex;
  _sender?: { _state?: number; _queue?: unknown[] };
}

/** Sends the frame: written whole when `ws` would write at once, through `ws.send` otherwise. */
export function writeWhole(socket: WebSocket, frame: WholeFrame): void {
  const internals = socket as unknown as WsInternals;
  const raw = internals._socket;
  const sender = internals._sender;
  if (
    WHOLE_FRAMES &&
    socket.readyState === WebSocket.OPEN &&
    raw !== undefined &&
    sender !== undefined &&
    sender._state === 0 &&
    sender._queue?.length === 0
  ) {
    raw.write(frame.bytes);
    return;
  }
  socket.send(frame.bytes.subarray(frame.payloadAt), AS_TEXT);
}

const AS_TEXT = { binary: false } as const;
