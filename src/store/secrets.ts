import fs from 'node:fs';
import path from 'node:path';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { DATA_KEY_BYTES, parseDataKey } from '../config.ts';
import { createPrivateFile } from '../files.ts';

/*
 * Secrets at rest. What Herald only compares (scoped tokens, the admin token) it keeps as a
 * hash. What it must use as a key — a user's API key, for Ozeki-Signature HMACs, and a
 * device's UDP secret, for datagram MACs — it keeps sealed with AES-256-GCM under the data
 * key, which lives outside the database (HERALD_SECRET_KEY, or secret.key in the data
 * directory), so a copy of the database alone gives none of them away.
 */

/** The data key's file in the data directory, used when HERALD_SECRET_KEY is unset. */
export const DATA_KEY_FILE = 'secret.key';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Raised when a sealed value cannot be opened: another data key, or a changed value. */
export class SealError extends Error {}

/**
 * The data key at work. Separate keys are derived from it for each use (HKDF-SHA256), so a
 * look-up hash and a sealed value never share a key.
 */
export class SecretBox {
  private readonly lookupKey: Buffer;
  private readonly sealKey: Buffer;
  /**
   * A value the database keeps to tell whether a node holds the key its secrets were sealed
   * with; it gives nothing of the key away (an HMAC under a key derived for it alone).
   */
  readonly checkValue: string;

  constructor(dataKey: Buffer) {
    if (dataKey.length !== DATA_KEY_BYTES) throw new Error(`a data key is ${DATA_KEY_BYTES} bytes, not ${dataKey.length}`);
    const derive = (use: string) => Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), `herald ${use}`, 32));
    this.lookupKey = derive('lookup hash');
    this.sealKey = derive('seal');
    this.checkValue = createHmac('sha256', derive('key check')).update('herald data key').digest('hex').slice(0, 32);
  }

  /** A throwaway key, for a database that lives in memory and dies with the process. */
  static ephemeral(): SecretBox {
    return new SecretBox(randomBytes(DATA_KEY_BYTES));
  }

  /**
   * What a secret is found by (HMAC-SHA256, hex): an API key has 192 random bits, so a keyed
   * hash is enough, and the same key always gives the same hash for the unique index.
   */
  lookupHash(secret: string): string {
    return createHmac('sha256', this.lookupKey).update(secret).digest('hex');
  }

  /**
   * Seals a secret: base64 of nonce ‖ ciphertext ‖ tag. `context` names where the value lies
   * (`apikey:<userid>`): a sealed value copied into another row does not open there.
   */
  seal(secret: string, context: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
  }

  open(sealed: string, context: string): string {
    const bytes = Buffer.from(sealed, 'base64');
    if (bytes.length < NONCE_BYTES + TAG_BYTES) throw new SealError(`the sealed ${context} is too short`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.sealKey, bytes.subarray(0, NONCE_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (error) {
      throw new SealError(`the sealed ${context} does not open with this data key`, { cause: error });
    }
  }
}

/** Where each kind of secret lies: the sealed value is bound to its row. */
export const sealContext = {
  apikey: (userId: string) => `apikey:${userId}`,
  udpSecret: (station: string) => `udp:${station}`,
};

/**
 * The data key of a node without HERALD_SECRET_KEY: `secret.key` in the data directory,
 * made once (mode 0600, base64). Every node sharing one database must hold the same key.
 */
export function dataKeyFromDir(dataDir: string): { key: Buffer; file: string; created: boolean } {
  const file = path.join(dataDir, DATA_KEY_FILE);
  const created = createPrivateFile(file, randomBytes(DATA_KEY_BYTES).toString('base64') + '\n');
  const key = parseDataKey(fs.readFileSync(file, 'utf8'));
  if (!key) throw new Error(`${file} does not hold a data key (32 bytes, base64 or hex)`);
  return { key, file, created };
}
