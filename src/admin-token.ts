import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from './config.ts';
import { writePrivateFile } from './files.ts';

/*
 * The admin token, the root credential of /v1 and /metrics. Herald only compares it, so it
 * keeps only its SHA-256: in memory when HERALD_ADMIN_TOKEN is set, and otherwise in
 * `admin-token.sha256` in the data directory. A generated token is printed once, when it is
 * made (at the first start, or by `herald admin-token reset`), and is nowhere to be read
 * again afterwards.
 */

/** The hash's file in the data directory (hex SHA-256 of the token). */
export const ADMIN_TOKEN_HASH_FILE = 'admin-token.sha256';
/** Where versions before secrets at rest kept the token itself. */
const CLEAR_TOKEN_FILE = 'admin-token';

/** The SHA-256 of an admin token. */
export type AdminTokenHash = Buffer;

export function hashAdminToken(token: string): AdminTokenHash {
  return createHash('sha256').update(token).digest();
}

/** True when `given` is the token of this hash; in constant time (both sides are 32-byte hashes). */
export function isAdminToken(given: string, hash: AdminTokenHash): boolean {
  return timingSafeEqual(hashAdminToken(given), hash);
}

export function newAdminToken(): string {
  return randomBytes(24).toString('base64url');
}

/** What the node's start says about its admin token, when there is something to say. */
export interface AdminTokenNews {
  level: 'warn' | 'info';
  message: string;
}

/**
 * The admin token's hash: of HERALD_ADMIN_TOKEN, or from the data directory, where a token
 * is generated (and told once, in `news`) when there is none. A token kept in the clear by an
 * older version is turned into its hash, and the clear file removed.
 */
export function loadAdminTokenHash(config: Pick<Config, 'adminToken' | 'dataDir'>): { hash: AdminTokenHash; news?: AdminTokenNews } {
  if (config.adminToken !== undefined) return { hash: hashAdminToken(config.adminToken) };
  const hashFile = path.join(config.dataDir, ADMIN_TOKEN_HASH_FILE);
  if (fs.existsSync(hashFile)) return { hash: readHashFile(hashFile) };
  const clearFile = path.join(config.dataDir, CLEAR_TOKEN_FILE);
  if (fs.existsSync(clearFile)) {
    const hash = hashAdminToken(fs.readFileSync(clearFile, 'utf8').trim());
    writePrivateFile(hashFile, hash.toString('hex') + '\n');
    fs.rmSync(clearFile);
    return {
      hash,
      news: {
        level: 'info',
        message: `the admin token is unchanged; only its hash is kept now, in ${hashFile} (${clearFile} was removed)`,
      },
    };
  }
  const token = newAdminToken();
  const hash = hashAdminToken(token);
  writePrivateFile(hashFile, hash.toString('hex') + '\n');
  return {
    hash,
    news: {
      level: 'warn',
      message: `HERALD_ADMIN_TOKEN is unset; generated an admin token, shown this once (only its hash is kept, in ${hashFile}; \`herald admin-token reset\` makes a new one): ${token}`,
    },
  };
}

/** Makes a new admin token for the data directory and returns it; a node takes it at its next start. */
export function resetAdminToken(dataDir: string): { token: string; file: string } {
  const token = newAdminToken();
  const file = path.join(dataDir, ADMIN_TOKEN_HASH_FILE);
  writePrivateFile(file, hashAdminToken(token).toString('hex') + '\n');
  fs.rmSync(path.join(dataDir, CLEAR_TOKEN_FILE), { force: true });
  return { token, file };
}

function readHashFile(file: string): AdminTokenHash {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new Error(`${file} does not hold the SHA-256 of an admin token (64 hex digits)`);
  return Buffer.from(text, 'hex');
}
