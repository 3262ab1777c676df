import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/*
 * Herald's UDP push protocol: the datagram layout, its MAC and the replay window, shared
 * by the server (channels/udp.ts) and the desktop client (client/udp-receiver.ts).
 * The README ("UDP push for desktop clients") describes the same thing byte by byte for
 * clients in other languages.
 *
 *   offset size  field
 *   0      1     magic 0x48 ("H")
 *   1      1     version 0x02 (0x01 had no return-routability cookie; it is refused)
 *   2      1     type (DatagramType)
 *   3      16    station id (the 32 hex characters of Ozeki-Station, as bytes)
 *   19     8     counter, unsigned 64-bit big-endian
 *   27     n     payload: UTF-8 JSON object (may be empty)
 *   27+n   16    MAC: first 16 bytes of HMAC-SHA256(secret, bytes 0 … 26+n)
 *
 * The secret is the device's `udpsecret` (64 hex characters) decoded to its 32 bytes.
 *
 * Return-routability: the server sends pushes, welcomes and resumes only to an address that
 * has echoed a cookie the server sent there (see ReturnRoutability below); until then its
 * only answer is a challenge no larger than the hello that caused it.
 */

export const MAGIC = 0x48;
export const VERSION = 0x02;
export const HEADER_BYTES = 27;
export const MAC_BYTES = 16;
/** Every datagram stays under 1,200 bytes: below the IPv6 minimum MTU after headers. */
export const MAX_DATAGRAM_BYTES = 1199;
export const MAX_PAYLOAD_BYTES = MAX_DATAGRAM_BYTES - HEADER_BYTES - MAC_BYTES;

/** Types from the client are odd, from the server even, so no datagram can be reflected back as valid. */
export const DatagramType = {
  hello: 0x01,
  welcome: 0x02,
  ack: 0x03,
  push: 0x04,
  resume: 0x05,
  challenge: 0x06,
} as const;
export type DatagramTypeName = keyof typeof DatagramType;

const TYPE_NAMES = new Map<number, DatagramTypeName>(Object.entries(DatagramType).map(([name, code]) => [code, name as DatagramTypeName]));
export const CLIENT_TYPES: ReadonlySet<DatagramTypeName> = new Set(['hello', 'ack', 'resume']);
export const SERVER_TYPES: ReadonlySet<DatagramTypeName> = new Set(['welcome', 'push', 'challenge']);

/**
 * Every hello is padded to at least this size. The server answers a hello from an address
 * that has not proved it receives there only with a challenge (78 bytes), and only when the
 * hello is at least as large, so a spoofed source address gains no amplification.
 */
export const HELLO_MIN_BYTES = 96;

/** The server's retransmission schedule: waits after each send; after the last one it gives up. */
export const RETRANSMIT_DELAYS_MS = [250, 500, 1000, 2000, 4000] as const;

/** Client counters must be within this distance of the server's clock (unix microseconds). */
export const COUNTER_CLOCK_WINDOW_MS = 5 * 60 * 1000;

/** Counters below the highest seen by at most this much may still arrive once (UDP reorders). */
export const REPLAY_WINDOW = 64n;

export const STATION_PATTERN = /^[0-9a-f]{32}$/;
const SECRET_PATTERN = /^[0-9a-f]{64}$/;

export interface Datagram {
  type: DatagramTypeName;
  station: string;
  counter: bigint;
  payload: Record<string, unknown>;
}

/** Why an incoming datagram was refused; also the `reason` label of the drop metric. */
export type RefusalReason =
  | 'oversized'
  | 'malformed'
  | 'wrong_direction'
  | 'unknown_station'
  | 'bad_mac'
  | 'replayed'
  | 'stale'
  | 'unbound'
  | 'unpadded'
  /** Over HERALD_LIMIT_UDP: too many hellos from the source address. */
  | 'rate_limited';

export class DatagramRefused extends Error {
  constructor(readonly reason: RefusalReason) {
    super(`UDP datagram refused: ${reason}`);
  }
}

export function secretBytes(secret: string): Buffer {
  const normalised = secret.toLowerCase();
  if (!SECRET_PATTERN.test(normalised)) throw new Error('a UDP secret is 64 hexadecimal characters');
  return Buffer.from(normalised, 'hex');
}

function mac(secret: Buffer, signed: Buffer): Buffer {
  return createHmac('sha256', secret).update(signed).digest().subarray(0, MAC_BYTES);
}

/** Builds one authenticated datagram; throws if it would not fit in MAX_DATAGRAM_BYTES. */
export function encodeDatagram(secret: Buffer, datagram: Datagram): Buffer {
  if (!STATION_PATTERN.test(datagram.station)) throw new Error('a station id is 32 lower-case hex characters');
  const payload = Object.keys(datagram.payload).length === 0 ? Buffer.alloc(0) : Buffer.from(JSON.stringify(datagram.payload));
  return encodeRaw(secret, DatagramType[datagram.type], datagram.station, datagram.counter, payload);
}

/** The same with a payload that is already JSON text (the hub serialises a frame once). */
export function encodeRaw(secret: Buffer, type: number, station: string, counter: bigint, payload: Buffer): Buffer {
  if (payload.length > MAX_PAYLOAD_BYTES) throw new Error(`a UDP payload holds at most ${MAX_PAYLOAD_BYTES} bytes`);
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + MAC_BYTES);
  out[0] = MAGIC;
  out[1] = VERSION;
  out[2] = type;
  out.write(station, 3, 16, 'hex');
  out.writeBigUInt64BE(counter, 19);
  payload.copy(out, HEADER_BYTES);
  mac(secret, out.subarray(0, HEADER_BYTES + payload.length)).copy(out, HEADER_BYTES + payload.length);
  return out;
}

/** The unauthenticated header: enough to find the station's secret. Throws DatagramRefused. */
export function peekHeader(bytes: Buffer): { type: DatagramTypeName; station: string } {
  if (bytes.length > MAX_DATAGRAM_BYTES) throw new DatagramRefused('oversized');
  if (bytes.length < HEADER_BYTES + MAC_BYTES || bytes[0] !== MAGIC || bytes[1] !== VERSION) {
    throw new DatagramRefused('malformed');
  }
  const type = TYPE_NAMES.get(bytes[2]);
  if (!type) throw new DatagramRefused('malformed');
  return { type, station: bytes.toString('hex', 3, 19) };
}

/**
 * Verifies the MAC and parses the payload. The MAC is checked before anything in the
 * payload is looked at, so unauthenticated bytes never reach the JSON parser.
 */
export function openDatagram(secret: Buffer, bytes: Buffer): Datagram {
  const { type, station } = peekHeader(bytes);
  const signedEnd = bytes.length - MAC_BYTES;
  const expected = mac(secret, bytes.subarray(0, signedEnd));
  if (!timingSafeEqual(expected, bytes.subarray(signedEnd))) throw new DatagramRefused('bad_mac');
  const counter = bytes.readBigUInt64BE(19);
  let payload: Record<string, unknown> = {};
  if (signedEnd > HEADER_BYTES) {
    try {
      const parsed: unknown = JSON.parse(bytes.toString('utf8', HEADER_BYTES, signedEnd));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      payload = parsed as Record<string, unknown>;
    } catch {
      throw new DatagramRefused('malformed');
    }
  }
  return { type, station, counter, payload };
}

/**
 * Counters: each sender's are strictly increasing. Both sides derive them from the clock
 * (unix time in microseconds, or one more than the last if the clock has not moved), so
 * they keep increasing across restarts without anything stored.
 */
export class CounterClock {
  private last = 0n;
  next(now = Date.now()): bigint {
    const fromClock = BigInt(now) * 1000n;
    this.last = fromClock > this.last ? fromClock : this.last + 1n;
    return this.last;
  }
}

/**
 * The receiver's replay rule: a counter above the highest seen is accepted; one within
 * REPLAY_WINDOW below it is accepted once (datagrams may arrive out of order); anything
 * older, or seen before, is refused.
 */
export class ReplayWindow {
  private highest = 0n;
  /** Bit i set: counter `highest - i` has been seen. */
  private seen = 0n;

  /** True when the counter is new; it is then recorded. Call only after the MAC verified. */
  accept(counter: bigint): boolean {
    if (counter > this.highest) {
      const shift = counter - this.highest;
      this.seen = shift >= REPLAY_WINDOW ? 1n : ((this.seen << shift) | 1n) & ((1n << REPLAY_WINDOW) - 1n);
      this.highest = counter;
      return true;
    }
    const age = this.highest - counter;
    if (age >= REPLAY_WINDOW) return false;
    const bit = 1n << age;
    if (this.seen & bit) return false;
    this.seen |= bit;
    return true;
  }

  get highestSeen(): bigint {
    return this.highest;
  }
}

/**
 * A hello's payload: the last cookie the server sent (if any) and a `pad` of zeros that
 * brings the datagram to HELLO_MIN_BYTES, so the challenge it may draw is never larger.
 */
export function helloPayload(cookie?: string): Record<string, unknown> {
  const payload: Record<string, unknown> = cookie === undefined ? {} : { cookie };
  const unpadded = HEADER_BYTES + Buffer.byteLength(JSON.stringify({ ...payload, pad: '' })) + MAC_BYTES;
  payload.pad = '0'.repeat(Math.max(0, HELLO_MIN_BYTES - unpadded));
  return payload;
}

const COOKIE_BYTES = 16;
const COOKIE_LABEL = Buffer.from('herald udp cookie\0');

/**
 * The server's return-routability cookies: a keyed MAC over station, source address, port
 * and a coarse time slot, so nothing is stored per unproven address. The key is random
 * per process: a restart only costs clients one more challenge. A cookie is valid in the
 * slot it was issued in and the next one, so it lives between one and two slots.
 */
export class ReturnRoutability {
  private readonly key: Buffer;

  constructor(
    private readonly slotMs: number,
    key: Buffer = randomBytes(32),
  ) {
    this.key = key;
  }

  issue(station: string, address: string, port: number, now = Date.now()): string {
    return this.cookie(station, address, port, Math.floor(now / this.slotMs)).toString('base64url');
  }

  /** True when `cookie` was issued for this station, address and port in this slot or the last. */
  verify(cookie: unknown, station: string, address: string, port: number, now = Date.now()): boolean {
    if (typeof cookie !== 'string' || cookie.length > 64) return false;
    const presented = Buffer.from(cookie, 'base64url');
    if (presented.length !== COOKIE_BYTES) return false;
    const slot = Math.floor(now / this.slotMs);
    return [slot, slot - 1].some((s) => timingSafeEqual(this.cookie(station, address, port, s), presented));
  }

  private cookie(station: string, address: string, port: number, slot: number): Buffer {
    const fixed = Buffer.alloc(16 + 2 + 8);
    fixed.write(station, 0, 16, 'hex');
    fixed.writeUInt16BE(port, 16);
    fixed.writeBigInt64BE(BigInt(slot), 18);
    return createHmac('sha256', this.key).update(COOKIE_LABEL).update(fixed).update(address).digest().subarray(0, COOKIE_BYTES);
  }
}

/** A frame too large for one datagram is replaced by this: fetch it over HTTPS instead. */
export function fetchSignal(frame: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'fetch',
    seq: frame.seq,
    id: frame.id,
    kind: frame.type === 'clean' ? 'clean' : frame.kind,
    conversationid: frame.conversationid,
    badge: frame.badge,
  };
}
