import fs from 'node:fs';
import path from 'node:path';
import { createECDH } from 'node:crypto';
import webPush from 'web-push';
import type { Config } from '../../config.ts';
import { createPrivateFile } from '../../files.ts';
import { decodeBase64url } from '../../chat/push-subscription.ts';

/** The application server's key pair: raw P-256 keys, base64url (the `web-push` CLI's JSON too). */
export interface VapidKeys {
  /** The uncompressed point (65 bytes): the browser's applicationServerKey. */
  publicKey: string;
  /** The private scalar (32 bytes). */
  privateKey: string;
}

/** Where the key pair lives: HERALD_VAPID_KEY_FILE, or vapid.json in the data directory. */
export function vapidKeyFile(config: Config): string {
  return config.vapid.keyFile ?? path.join(config.dataDir, 'vapid.json');
}

/**
 * Reads the VAPID key pair from HERALD_VAPID_KEY_FILE (which must exist), or from
 * data/vapid.json, generated there when it is missing (mode 0600), and checks it. It must
 * never change by itself: every browser subscription is bound to the public key it was
 * created with. Each call reads the file: load it once when the node starts and hand the
 * keys to whoever needs them.
 */
export function loadVapidKeys(config: Config): VapidKeys {
  const file = vapidKeyFile(config);
  const source = config.vapid.keyFile ? `HERALD_VAPID_KEY_FILE ${file}` : `the VAPID key file ${file}`;
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || config.vapid.keyFile) {
      throw new Error(`${source} cannot be read: ${(error as Error).message}`, { cause: error });
    }
  }
  if (text === undefined) {
    const generated = webPush.generateVAPIDKeys();
    // Written all at once: another process starting on the same data directory at the same moment keeps its pair.
    text = createPrivateFile(file, JSON.stringify(generated, null, 2) + '\n') ? JSON.stringify(generated) : fs.readFileSync(file, 'utf8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  return checkVapidKeys(parsed, source);
}

/** Checks a key pair read from a file: sizes, and that the public key belongs to the private one. */
function checkVapidKeys(value: unknown, source: string): VapidKeys {
  const keys = value as Partial<VapidKeys> | null;
  const privateKey = typeof keys?.privateKey === 'string' ? decodeBase64url(keys.privateKey) : undefined;
  const publicKey = typeof keys?.publicKey === 'string' ? decodeBase64url(keys.publicKey) : undefined;
  if (!privateKey || privateKey.length !== 32 || !publicKey || publicKey.length !== 65) {
    throw new Error(`${source} must hold {"publicKey": <65 bytes base64url>, "privateKey": <32 bytes base64url>}`);
  }
  const ecdh = createECDH('prime256v1');
  try {
    ecdh.setPrivateKey(privateKey);
  } catch (error) {
    throw new Error(`${source}: privateKey is not a P-256 private key: ${(error as Error).message}`, { cause: error });
  }
  if (!ecdh.getPublicKey().equals(publicKey)) throw new Error(`${source}: publicKey does not belong to privateKey`);
  return { publicKey: publicKey.toString('base64url'), privateKey: privateKey.toString('base64url') };
}
