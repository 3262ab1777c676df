import net from 'node:net';
import { createECDH } from 'node:crypto';
import { badRequest } from '../errors.ts';

/*
 * A browser's Web Push subscription as a device registers it: its shape is checked here,
 * before anything is written; the Web Push channel only sends to what passed.
 */

/** What the browser's PushSubscription.toJSON() gives, as Herald stores it. */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export const MAX_ENDPOINT_LENGTH = 2048;

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** The bytes of a base64url text, or undefined when it is not base64url (Buffer alone would skip bad characters). */
export function decodeBase64url(value: string): Buffer | undefined {
  if (!BASE64URL.test(value)) return undefined;
  return Buffer.from(value.replace(/=+$/, ''), 'base64url');
}

/** True when the bytes are an uncompressed point on P-256 (not only 65 bytes starting with 04). */
function isP256Point(point: Buffer): boolean {
  if (point.length !== 65 || point[0] !== 0x04) return false;
  try {
    // computeSecret refuses a point that is not on the curve.
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    ecdh.computeSecret(point);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks a browser's subscription (PushSubscription.toJSON(): endpoint, keys.p256dh,
 * keys.auth; expirationTime is accepted and ignored) and returns the parts Herald keeps.
 */
export function checkPushSubscription(value: unknown): WebPushSubscription {
  const shape = "pushsubscription must be the browser's PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}";
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw badRequest(shape);
  const { endpoint, keys } = value as { endpoint?: unknown; keys?: unknown };
  if (typeof endpoint !== 'string' || endpoint === '') throw badRequest(`${shape}; endpoint is missing`);
  if (endpoint.length > MAX_ENDPOINT_LENGTH) {
    throw badRequest(`pushsubscription.endpoint is longer than ${MAX_ENDPOINT_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw badRequest('pushsubscription.endpoint is not a URL');
  }
  // RFC 8030 §8: push messages are sent over TLS only.
  if (url.protocol !== 'https:') throw badRequest('pushsubscription.endpoint must be an https:// URL');
  if (url.username || url.password) throw badRequest('pushsubscription.endpoint must not carry a user name or password');
  if (!keys || typeof keys !== 'object' || Array.isArray(keys)) throw badRequest(`${shape}; keys is missing`);
  const { p256dh, auth } = keys as { p256dh?: unknown; auth?: unknown };
  if (typeof p256dh !== 'string' || p256dh.length > 200) throw badRequest('pushsubscription.keys.p256dh must be a base64url string');
  const point = decodeBase64url(p256dh);
  if (!point || !isP256Point(point)) {
    throw badRequest('pushsubscription.keys.p256dh must be a 65-byte uncompressed P-256 public key, base64url');
  }
  if (typeof auth !== 'string' || auth.length > 100) throw badRequest('pushsubscription.keys.auth must be a base64url string');
  const secret = decodeBase64url(auth);
  if (!secret || secret.length !== 16) throw badRequest('pushsubscription.keys.auth must be a 16-byte secret, base64url');
  return { endpoint: url.href, keys: { p256dh: point.toString('base64url'), auth: secret.toString('base64url') } };
}

/**
 * Addresses a user's endpoint may not lead Herald to: "this network", private (RFC 1918,
 * RFC 4193), shared (RFC 6598), loopback, link-local (cloud metadata services live there),
 * benchmarking, multicast and reserved ranges, and IPv6 forms that embed an IPv4 address
 * (NAT64, 6to4; BlockList checks an IPv4-mapped address against the IPv4 ranges).
 */
const INTERNAL_ADDRESSES = (() => {
  const list = new net.BlockList();
  for (const [prefix, bits] of [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['224.0.0.0', 3],
  ] as const)
    list.addSubnet(prefix, bits, 'ipv4');
  for (const [prefix, bits] of [
    ['::', 127],
    ['64:ff9b::', 96],
    ['2002::', 16],
    ['fc00::', 7],
    ['fe80::', 10],
    ['ff00::', 8],
  ] as const)
    list.addSubnet(prefix, bits, 'ipv6');
  return list;
})();

/** True for an IP address a user's endpoint may not lead Herald to (a host name is never internal here). */
export function isInternalAddress(address: string): boolean {
  const family = net.isIP(address);
  return family !== 0 && INTERNAL_ADDRESSES.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
