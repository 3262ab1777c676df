import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

/** Web3MQ public keys travel as the lowercase hex of the raw 32-byte ed25519 key. */
export const ED25519_HEX = /^[0-9a-f]{64}$/;

/** An Ethereum address as a wallet writes it. */
export const ETH_ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** How far a signed timestamp may be from the server's clock, either way. */
export const TIMESTAMP_WINDOW_MS = 5 * 60 * 1000;

// The DER prefix of an SPKI structure holding a raw ed25519 key (RFC 8410): SEQUENCE,
// AlgorithmIdentifier { id-Ed25519 }, BIT STRING of 33 bytes (a zero pad byte, then the key).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const keyCache = new Map<string, KeyObject>();
const KEY_CACHE_LIMIT = 10_000;

function ed25519Key(pubkeyHex: string): KeyObject {
  let key = keyCache.get(pubkeyHex);
  if (!key) {
    key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(pubkeyHex, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear();
    keyCache.set(pubkeyHex, key);
  }
  return key;
}

const BASE64 = /^[A-Za-z0-9+/]{86}==$/;

/**
 * Web3MQ: signature = base64(ed25519_sign(private key, utf8(signed string))), standard
 * base64 with padding; a 64-byte signature is always 88 characters.
 */
export function verifyEd25519(pubkeyHex: string, signedString: string, signatureBase64: string): boolean {
  if (!ED25519_HEX.test(pubkeyHex) || !BASE64.test(signatureBase64)) return false;
  try {
    return verify(null, Buffer.from(signedString, 'utf8'), ed25519Key(pubkeyHex), Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false; // a point that is not on the curve
  }
}

export function sha3_224Hex(text: string): string {
  return createHash('sha3-224').update(text, 'utf8').digest('hex');
}

/**
 * The address an Ethereum personal-sign signature (EIP-191: keccak256 of
 * "\x19Ethereum Signed Message:\n" + byte length + message) was made with, lowercase,
 * or null when the signature is malformed. The signature is r ‖ s ‖ v in hex, v being
 * 27/28 (or 0/1 from some wallets).
 */
export function recoverPersonalSignAddress(message: string, signatureHex: string): string | null {
  const hex = signatureHex.startsWith('0x') ? signatureHex.slice(2) : signatureHex;
  if (!/^[0-9a-fA-F]{130}$/.test(hex)) return null;
  const bytes = Buffer.from(hex, 'hex');
  const v = bytes[64];
  const recovery = v >= 27 ? v - 27 : v;
  if (recovery !== 0 && recovery !== 1) return null;
  const body = Buffer.from(message, 'utf8');
  const digest = keccak_256(Buffer.concat([Buffer.from(`\x19Ethereum Signed Message:\n${body.length}`, 'utf8'), body]));
  try {
    const recovered = Buffer.concat([Buffer.of(recovery), bytes.subarray(0, 64)]);
    const publicKey = secp256k1.recoverPublicKey(recovered, digest, { prehash: false });
    const point = secp256k1.Point.fromBytes(publicKey);
    const uncompressed = point.toBytes(false);
    const address = Buffer.from(keccak_256(uncompressed.subarray(1)).subarray(12)).toString('hex');
    return `0x${address}`;
  } catch {
    return null;
  }
}

export function isFresh(timestampMs: number, now = Date.now()): boolean {
  return Math.abs(now - timestampMs) <= TIMESTAMP_WINDOW_MS;
}
