import WebSocket from 'ws';

/*
 * Test-side pieces for Web3MQ's live socket: the browser globals the official SDK touches,
 * with a real WebSocket, and a raw client that speaks the frames byte by byte. The protobuf
 * here is written independently of the server's, so one cannot hide a mistake of the other.
 */

class InertIDBRequest extends EventTarget {}

class MemoryStorage {
  private items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, String(value));
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
  clear(): void {
    this.items.clear();
  }
}

/**
 * Gives the SDK what a browser would: Web Crypto, btoa/atob, and the WebSocket class it is
 * handed. Its chat cache (IndexedDB, localStorage) gets stand-ins; the notification path
 * never reads it. Installed before the SDK is loaded.
 */
export function installBrowserGlobals(webSocketClass: unknown): void {
  Object.assign(globalThis, {
    window: {
      crypto: globalThis.crypto,
      btoa: globalThis.btoa,
      atob: globalThis.atob,
      WebSocket: webSocketClass,
      location: { origin: 'http://localhost' },
    },
    WebSocket: webSocketClass,
    localStorage: new MemoryStorage(),
    IDBRequest: InertIDBRequest,
    indexedDB: { open: () => new InertIDBRequest() },
  });
}

/** The `ws` package's WebSocket, trusting the test certificate as a browser trusts an installed one. */
export function trustingWebSocket(ca: string) {
  return class TrustingWebSocket extends WebSocket {
    constructor(url: string) {
      super(url, { ca });
    }
  };
}

function varint(value: bigint): number[] {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = Number(rest & 0x7fn);
    rest >>= 7n;
    if (rest > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0n);
  return bytes;
}

function stringField(field: number, value: string): number[] {
  const bytes = [...Buffer.from(value, 'utf8')];
  return [...varint(BigInt((field << 3) | 2)), ...varint(BigInt(bytes.length)), ...bytes];
}

/** `pb.ConnectCommand` as the SDK fills it: nodeId = 1, userId = 2, uint64 timestamp = 3, msgSign = 4. */
export function connectCommandBytes(c: { nodeId: string; userId: string; timestamp: number; msgSign: string }): Uint8Array {
  return Uint8Array.from([
    ...stringField(1, c.nodeId),
    ...stringField(2, c.userId),
    ...varint(BigInt((3 << 3) | 0)),
    ...varint(BigInt(c.timestamp)),
    ...stringField(4, c.msgSign),
  ]);
}

/** `pb.WebsocketPingCommand` as the SDK sends it: only `uint64 timestamp = 3`. */
export function pingBytes(timestamp: number): Uint8Array {
  return Uint8Array.from([...varint(BigInt((3 << 3) | 0)), ...varint(BigInt(timestamp))]);
}

export type FieldValue = bigint | Buffer;

/** Every field of a protobuf message, in order (varints as bigint, length-delimited as bytes). */
export function decodeFields(bytes: Uint8Array): Array<{ field: number; value: FieldValue }> {
  const buffer = Buffer.from(bytes);
  const fields: Array<{ field: number; value: FieldValue }> = [];
  let offset = 0;
  const readVarint = (): bigint => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buffer[offset++];
      if (byte === undefined) throw new Error('truncated varint');
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  };
  while (offset < buffer.length) {
    const key = Number(readVarint());
    const wireType = key & 7;
    if (wireType === 0) fields.push({ field: key >> 3, value: readVarint() });
    else if (wireType === 2) {
      const length = Number(readVarint());
      fields.push({ field: key >> 3, value: buffer.subarray(offset, offset + length) });
      offset += length;
    } else throw new Error(`unexpected wire type ${wireType}`);
  }
  return fields;
}

/** A MessageItem of a NotificationListResp, by its field names in Web3MQ's message.proto. */
export function decodeMessageItem(bytes: Buffer) {
  const names = [
    '',
    'messageId',
    'version',
    'payload',
    'payloadType',
    'comeFrom',
    'fromSign',
    'contentTopic',
    'cipherSuite',
    'timestamp',
    'read',
    'readTimestamp',
  ];
  const item: Record<string, unknown> = {};
  for (const { field, value } of decodeFields(bytes)) {
    const name = names[field] ?? `field${field}`;
    if (name === 'payload') item.payload = JSON.parse((value as Buffer).toString('utf8'));
    else if (name === 'read') item.read = value === 1n;
    else if (typeof value === 'bigint') item[name] = Number(value);
    else item[name] = value.toString('utf8');
  }
  return item;
}

/** A live-socket client that keeps every frame as pbType and protobuf body. */
export class RawLiveSocket {
  readonly socket: WebSocket;
  readonly frames: Array<{ pbType: number; body: Buffer }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    const socket = new WebSocket(url, options);
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      this.frames.push({ pbType: data[1], body: data.subarray(2) });
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('close', () => reject(new Error('closed before it opened')));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  async send(frame: Uint8Array): Promise<void> {
    await this.opened;
    this.socket.send(frame);
  }

  /** The first frame of this pbType, waiting for it at most `timeoutMs`. */
  async next(pbType: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find((f) => f.pbType === pbType);
      if (found) return found.body;
      if (this.socket.readyState === WebSocket.CLOSED) throw new Error(`closed before a frame of pbType ${pbType} came`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame of pbType ${pbType} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.close();
  }
}
