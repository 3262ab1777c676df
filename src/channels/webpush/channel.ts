import dns from 'node:dns';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import { createECDH, createHash } from 'node:crypto';
import webPush from 'web-push';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import { decodeBase64url, isInternalAddress } from '../../chat/push-subscription.ts';
import type { Notification } from '../../model/notification.ts';
import { parseRetryAfter, pushExpiresAt, pushKindOf } from '../push-common.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../../model/channel.ts';

/**
 * Web Push for browsers whose tab is closed: RFC 8030 (the push request and its headers),
 * RFC 8291 (aes128gcm payload encryption to the subscription's keys) and RFC 8292 (VAPID).
 *
 * The `web-push` package does the encryption and signs the VAPID JWT; Herald sends the
 * request itself over one keep-alive agent that trusts HERALD_CA_FILE, so every push service
 * origin keeps its connections open and a test double can stand in for the push service.
 */

/** The application server's key pair: raw P-256 keys, base64url (the `web-push` CLI's JSON too). */
export interface VapidKeys {
  /** The uncompressed point (65 bytes): the browser's applicationServerKey. */
  publicKey: string;
  /** The private scalar (32 bytes). */
  privateKey: string;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** Concurrent connections per push service origin. */
const MAX_SOCKETS = 64;
/** RFC 8292 §2: exp at most 24 hours ahead; 12 hours leaves room for clock skew. */
const VAPID_TOKEN_LIFETIME_S = 12 * 3600;
/** A cached VAPID header is signed again once it has less than this left. */
const VAPID_TOKEN_MIN_REMAINING_S = 11 * 3600;
/** RFC 8030 §5.4: a Topic is at most 32 characters of the URL- and filename-safe base64 alphabet. */
const TOPIC_LENGTH = 32;

class InternalEndpointError extends Error {}

function internalEndpoint(host: string, address: string): InternalEndpointError {
  return new InternalEndpointError(
    `the endpoint ${host} is on a private or loopback address (${address}); set HERALD_WEBPUSH_ALLOW_PRIVATE=1 to allow it`,
  );
}

/**
 * dns.lookup, refusing names that resolve to an internal address. The check is on the
 * address actually connected to, so a name cannot be re-pointed between check and use.
 */
const publicOnlyLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, options, (error, address, family) => {
    if (error) return callback(error, address, family);
    const addresses = typeof address === 'string' ? [address] : (address as dns.LookupAddress[]).map((a) => a.address);
    const internal = addresses.find(isInternalAddress);
    if (internal !== undefined) return callback(internalEndpoint(hostname, internal), address, family);
    callback(null, address, family);
  });
};

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
    throw new Error(`${source}: privateKey is not a P-256 private key: ${(error as Error).message}`);
  }
  if (!ecdh.getPublicKey().equals(publicKey)) throw new Error(`${source}: publicKey does not belong to privateKey`);
  return { publicKey: publicKey.toString('base64url'), privateKey: privateKey.toString('base64url') };
}

const loadedVapidKeys = new Map<string, VapidKeys>();

/** Where the key pair lives: HERALD_VAPID_KEY_FILE, or vapid.json in the data directory. */
export function vapidKeyFile(config: Config): string {
  return config.vapid.keyFile ?? path.join(config.dataDir, 'vapid.json');
}

/**
 * The VAPID key pair: read from HERALD_VAPID_KEY_FILE (which must exist), or from
 * data/vapid.json, generated there once (mode 0600). It must never change by itself: every
 * browser subscription is bound to the public key it was created with.
 */
export function loadVapidKeys(config: Config): VapidKeys {
  const file = vapidKeyFile(config);
  const cached = loadedVapidKeys.get(file);
  if (cached) return cached;
  const source = config.vapid.keyFile ? `HERALD_VAPID_KEY_FILE ${file}` : `the VAPID key file ${file}`;
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || config.vapid.keyFile) {
      throw new Error(`${source} cannot be read: ${(error as Error).message}`);
    }
  }
  if (text === undefined) {
    const generated = webPush.generateVAPIDKeys();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    try {
      // 'wx': another process starting on the same data directory at the same moment keeps its pair.
      fs.writeFileSync(file, JSON.stringify(generated, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
      text = JSON.stringify(generated);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      text = fs.readFileSync(file, 'utf8');
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source} is not JSON: ${(error as Error).message}`);
  }
  const keys = checkVapidKeys(parsed, source);
  loadedVapidKeys.set(file, keys);
  return keys;
}

/** The Topic for a conversation: the first 24 bytes of its SHA-256, base64url (32 characters). */
export function topicOf(conversationId: string | null): string | undefined {
  if (!conversationId) return undefined;
  return createHash('sha256').update(conversationId).digest().subarray(0, 24).toString('base64url');
}

/** The JSON the service worker receives in its `push` event (event.data.json()). */
export function webPushPayload(n: Notification): Record<string, unknown> {
  if (n.type === 'clean') return { type: 'clean', badge: n.badge, conversationid: n.conversationId };
  return {
    type: n.type,
    title: n.title,
    body: n.body,
    badge: n.badge,
    conversationid: n.conversationId,
    seq: n.seq,
    id: n.id,
    ...(n.silent ? { silent: true } : {}),
  };
}

export type Urgency = 'very-low' | 'low' | 'normal' | 'high';

export interface WebPushRequest {
  /** Seconds the push service may hold the message (RFC 8030 §5.2). */
  ttl: number;
  urgency: Urgency;
  topic?: string;
  payload: string;
}

/** What Herald asks the push service for: an alert now, a badge reset soon, a silent update when convenient. */
export function webPushRequest(n: Notification, now = Date.now()): WebPushRequest {
  const kind = pushKindOf(n);
  return {
    ttl: Math.max(0, Math.floor((pushExpiresAt(n) - now) / 1000)),
    urgency: kind === 'alert' ? 'high' : kind === 'badge' ? 'normal' : 'low',
    topic: topicOf(n.conversationId),
    payload: JSON.stringify(webPushPayload(n)),
  };
}

/** Turns a push service's answer into the outbox's vocabulary (RFC 8030 §5, §6; RFC 8292 §4). */
export function webPushOutcome(status: number, body: string, retryAfter?: string | string[]): SendOutcome {
  const said = `${status}${body.trim() ? ': ' + body.trim().slice(0, 200) : ''}`;
  if (status >= 200 && status < 300) return { kind: 'delivered', detail: String(status) };
  // The subscription expired or the user revoked it: stop using it.
  if (status === 404 || status === 410) return { kind: 'dead', reason: `subscription gone (${said})` };
  if (status === 413) return { kind: 'failed', reason: `payload too large (${said})` };
  if (status === 429 || status >= 500) return { kind: 'retry', reason: said, afterMs: parseRetryAfter(retryAfter) };
  // 400 malformed request, 401 bad VAPID token, 403 the subscription belongs to another key.
  if (status === 401 || status === 403) return { kind: 'failed', reason: `the push service refused Herald's VAPID authorization (${said})` };
  return { kind: 'failed', reason: said };
}

export interface WebPushOptions {
  keys: VapidKeys;
  subject: string;
  ca?: string;
  log?: Logger;
  /** Allows endpoints on loopback, private and link-local addresses (HERALD_WEBPUSH_ALLOW_PRIVATE). */
  allowPrivateEndpoints?: boolean;
}

export class WebPushChannel implements PushChannel {
  readonly provider = 'webpush' as const;
  private readonly agent: https.Agent;
  /** The signed Authorization header per push service origin, and when its token expires. */
  private readonly authorizations = new Map<string, { header: string; expiresAt: number }>();

  constructor(private readonly options: WebPushOptions) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(options.ca ? { ca: options.ca } : {}) });
  }

  static async fromConfig(config: Config, log?: Logger): Promise<WebPushChannel> {
    return new WebPushChannel({
      keys: loadVapidKeys(config),
      subject: config.vapid.subject,
      ca: config.caFile ? fs.readFileSync(config.caFile, 'utf8') : undefined,
      log,
      allowPrivateEndpoints: config.vapid.allowPrivateEndpoints,
    });
  }

  get publicKey(): string {
    return this.options.keys.publicKey;
  }

  async send(target: PushTarget, notification: Notification): Promise<SendOutcome> {
    const p256dh = target.keys?.p256dh;
    const auth = target.keys?.auth;
    if (!p256dh || !auth) return { kind: 'dead', reason: 'the subscription has no p256dh and auth keys' };
    let endpoint: URL;
    try {
      endpoint = new URL(target.token);
    } catch {
      return { kind: 'dead', reason: 'the subscription endpoint is not a URL' };
    }
    const host = endpoint.hostname.replace(/^\[|\]$/g, '');
    if (!this.options.allowPrivateEndpoints && isInternalAddress(host)) {
      return { kind: 'dead', reason: internalEndpoint(host, host).message };
    }
    const request = webPushRequest(notification);
    const encrypted = webPush.encrypt(p256dh, auth, request.payload, 'aes128gcm');
    const headers: Record<string, string | number> = {
      ttl: request.ttl,
      urgency: request.urgency,
      'content-encoding': 'aes128gcm',
      'content-type': 'application/octet-stream',
      'content-length': encrypted.cipherText.length,
      authorization: this.authorization(endpoint.origin),
    };
    if (request.topic) headers.topic = request.topic;
    try {
      const answer = await this.post(endpoint, encrypted.cipherText, headers);
      return webPushOutcome(answer.status, answer.body, answer.retryAfter);
    } catch (error) {
      if (error instanceof InternalEndpointError) return { kind: 'dead', reason: error.message };
      return { kind: 'retry', reason: `Web Push ${endpoint.origin}: ${(error as Error).message}` };
    }
  }

  /** RFC 8292: `vapid t=<JWT for this origin>, k=<public key>`, signed once and reused for an hour. */
  private authorization(origin: string): string {
    const now = Math.floor(Date.now() / 1000);
    const cached = this.authorizations.get(origin);
    if (cached && cached.expiresAt - now > VAPID_TOKEN_MIN_REMAINING_S) return cached.header;
    const expiresAt = now + VAPID_TOKEN_LIFETIME_S;
    const { keys, subject } = this.options;
    const header = webPush.getVapidHeaders(origin, subject, keys.publicKey, keys.privateKey, 'aes128gcm', expiresAt).Authorization;
    this.authorizations.set(origin, { header, expiresAt });
    return header;
  }

  private post(url: URL, body: Buffer, headers: Record<string, string | number>) {
    return new Promise<{ status: number; body: string; retryAfter?: string | string[] }>((resolve, reject) => {
      const lookup = this.options.allowPrivateEndpoints ? undefined : publicOnlyLookup;
      const request = https.request(url, { method: 'POST', agent: this.agent, headers, lookup }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          // Only the start of an error body is kept for the reason.
          if (size < 1024) chunks.push(chunk);
          size += chunk.length;
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            retryAfter: response.headers['retry-after'],
          }),
        );
        response.on('error', reject);
      });
      request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      request.on('error', reject);
      request.end(body);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
