/*
 * The few protobuf messages of Web3MQ's live socket, encoded and decoded by hand.
 *
 * Wire format (protobuf encoding guide): a field is a key varint `field number << 3 | wire
 * type`, then its value. Wire type 0 is a varint, 2 is a length-delimited run of bytes
 * (strings, bytes, nested messages), 1 and 5 are fixed 8 and 4 bytes. Proto3 leaves out a
 * field that holds its default value (empty, zero, false); a reader takes the last value of
 * a repeated scalar field and skips fields it does not know.
 */

/** Web3MQ: every binary frame is [10, pbType, …protobuf]. */
export const FRAME_PREFIX = 10;

export const PB_TYPE = {
  connectReq: 2,
  connectResp: 3,
  notificationList: 20,
  ping: 128,
  pong: 129,
} as const;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

export class ProtobufError extends Error {}

export function frame(pbType: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(FRAME_PREFIX, pbType), body]);
}

/** The pbType and body of a frame, or undefined when it does not start with the prefix. */
export function parseFrame(bytes: Buffer): { pbType: number; body: Buffer } | undefined {
  if (bytes.length < 2 || bytes[0] !== FRAME_PREFIX) return undefined;
  return { pbType: bytes[1], body: bytes.subarray(2) };
}

class Writer {
  private chunks: Buffer[] = [];

  private varint(value: number): void {
    // Numbers beyond 32 bits: bitwise operators would truncate them, so divide instead.
    const bytes: number[] = [];
    let rest = value;
    while (rest >= 0x80) {
      bytes.push((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    bytes.push(rest);
    this.chunks.push(Buffer.from(bytes));
  }

  private key(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  uint(field: number, value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new ProtobufError(`field ${field}: ${value} is not an unsigned integer`);
    if (value !== 0) {
      this.key(field, VARINT);
      this.varint(value);
    }
    return this;
  }

  bool(field: number, value: boolean): this {
    return this.uint(field, value ? 1 : 0);
  }

  bytes(field: number, value: Uint8Array, keepEmpty = false): this {
    if (value.length > 0 || keepEmpty) {
      this.key(field, LENGTH_DELIMITED);
      this.varint(value.length);
      this.chunks.push(Buffer.from(value));
    }
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The last value of each field of a message: a number for varints, bytes for the rest. */
function readFields(body: Buffer): Map<number, number | Buffer> {
  const fields = new Map<number, number | Buffer>();
  let offset = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (offset >= body.length) throw new ProtobufError('truncated varint');
      const byte = body[offset++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new ProtobufError('a varint beyond 2^53');
        return value;
      }
      scale *= 0x80;
    }
    throw new ProtobufError('a varint longer than 10 bytes');
  };
  const take = (length: number): Buffer => {
    if (offset + length > body.length) throw new ProtobufError('truncated field');
    const value = body.subarray(offset, offset + length);
    offset += length;
    return value;
  };
  while (offset < body.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0) throw new ProtobufError('field number 0');
    if (wireType === VARINT) fields.set(field, varint());
    else if (wireType === LENGTH_DELIMITED) fields.set(field, take(varint()));
    else if (wireType === FIXED64) fields.set(field, take(8));
    else if (wireType === FIXED32) fields.set(field, take(4));
    else throw new ProtobufError(`unsupported wire type ${wireType}`);
  }
  return fields;
}

function stringField(fields: Map<number, number | Buffer>, field: number): string {
  const value = fields.get(field);
  if (value === undefined) return '';
  if (typeof value === 'number') throw new ProtobufError(`field ${field} must be a string`);
  return value.toString('utf8');
}

function uintField(fields: Map<number, number | Buffer>, field: number): number {
  const value = fields.get(field);
  if (value === undefined) return 0;
  if (typeof value !== 'number') throw new ProtobufError(`field ${field} must be a varint`);
  return value;
}

/**
 * `pb.ConnectCommand { string nodeId = 1; string userId = 2; uint64 timestamp = 3;
 * string msgSign = 4; }`: the client's ConnectReq, and (filled in by the server) its ConnectResp.
 */
export interface ConnectCommand {
  nodeId: string;
  userId: string;
  timestamp: number;
  msgSign: string;
}

export function decodeConnectCommand(body: Buffer): ConnectCommand {
  const fields = readFields(body);
  return {
    nodeId: stringField(fields, 1),
    userId: stringField(fields, 2),
    timestamp: uintField(fields, 3),
    msgSign: stringField(fields, 4),
  };
}

export function encodeConnectCommand(command: ConnectCommand): Buffer {
  return new Writer().string(1, command.nodeId).string(2, command.userId).uint(3, command.timestamp).string(4, command.msgSign).finish();
}

/** `pb.WebsocketPongCommand`: only its `uint64 timestamp = 3` is filled in. */
export function encodePong(timestamp: number): Buffer {
  return new Writer().uint(3, timestamp).finish();
}

/** `pb.MessageItem`, one entry of `pb.Web3MQMessageListResponse { repeated MessageItem data = 1; }`. */
export interface MessageItem {
  messageId: string;
  version: number;
  payload: Uint8Array;
  payloadType: string;
  comeFrom: string;
  fromSign: string;
  contentTopic: string;
  cipherSuite: string;
  timestamp: number;
  read: boolean;
  readTimestamp: number;
}

function encodeMessageItem(item: MessageItem): Buffer {
  return new Writer()
    .string(1, item.messageId)
    .uint(2, item.version)
    .bytes(3, item.payload)
    .string(4, item.payloadType)
    .string(5, item.comeFrom)
    .string(6, item.fromSign)
    .string(7, item.contentTopic)
    .string(8, item.cipherSuite)
    .uint(9, item.timestamp)
    .bool(10, item.read)
    .uint(11, item.readTimestamp)
    .finish();
}

export function encodeMessageList(items: MessageItem[]): Buffer {
  const writer = new Writer();
  // An element of a repeated message field is written even when it is empty.
  for (const item of items) writer.bytes(1, encodeMessageItem(item), true);
  return writer.finish();
}
