import fs from 'node:fs';
import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { importPKCS8, SignJWT, type CryptoKey } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Notification } from '../notify/model.ts';
import { apnsPush, parseRetryAfter, type ApnsPush } from '../notify/push-payload.ts';
import type { PushChannel, PushTarget, SendOutcome } from './channel.ts';

/**
 * Apple Push Notification service over its HTTP/2 provider API with token (JWT) auth:
 * one long-lived connection, as many streams in flight as the peer allows.
 */

// APNs: re-sign no more often than every 20 minutes and at least every 60; an iat older
// than an hour is rejected with ExpiredProviderToken.
const PROVIDER_TOKEN_LIFETIME_MS = 50 * 60 * 1000;
/** Never use more streams than this, whatever the peer advertises. */
const MAX_STREAMS_CAP = 2000;
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Requests past REQUEST_TIMEOUT_MS are cancelled by one sweep this often (so after 30–35 s),
 * rather than by a timer per stream: at thousands of pushes a second a timer each costs more
 * than the push's own bookkeeping.
 */
const TIMEOUT_SWEEP_MS = 5_000;
/** Ping a connection that has been idle this long, so a dead peer is noticed before the next push. */
const IDLE_PING_MS = 60_000;
// APNs: payloads are at most 4096 bytes.
const MAX_PAYLOAD_BYTES = 4096;

export interface ApnsOptions {
  /** The .p8 signing key (PKCS#8 PEM) from the Apple developer account. */
  keyPem: string;
  keyId: string;
  teamId: string;
  /** The app's bundle id. */
  topic: string;
  /** Origin, e.g. https://api.push.apple.com */
  url: string;
  /** Extra trusted CA certificates (PEM), for a test double. */
  ca?: string;
  log?: Logger;
}

/** The provider's answer to one request. */
export interface ApnsAnswer {
  status: number;
  apnsId?: string;
  reason?: string;
  /** 410: when the token stopped being valid (ms since the epoch). */
  timestamp?: number;
  retryAfterMs?: number;
}

/** Turns a provider answer into the outbox's vocabulary; every APNs reason lands on one outcome. */
export function apnsOutcome(answer: ApnsAnswer): SendOutcome {
  const { status, reason } = answer;
  const said = `${status}${reason ? ' ' + reason : ''}`;
  if (status === 200) return { kind: 'delivered', detail: `200 apns-id ${answer.apnsId ?? ''}`.trim() };
  switch (reason) {
    // APNs: 410 means the token is no longer active for the topic.
    case 'Unregistered':
    case 'ExpiredToken':
      return { kind: 'dead', reason: answer.timestamp ? `${said} since ${new Date(answer.timestamp).toISOString()}` : said };
    // APNs: the token is malformed or belongs to another app: drop it.
    case 'BadDeviceToken':
    case 'DeviceTokenNotForTopic':
      return { kind: 'dead', reason: said };
    case 'TooManyRequests':
    case 'TooManyProviderTokenUpdates':
    case 'InternalServerError':
    case 'ServiceUnavailable':
    case 'Shutdown':
    case 'IdleTimeout':
    // A fresh provider token is signed before the retry.
    case 'ExpiredProviderToken':
      return { kind: 'retry', reason: said, afterMs: answer.retryAfterMs };
    case 'BadCollapseId':
    case 'BadExpirationDate':
    case 'BadMessageId':
    case 'BadPriority':
    case 'BadTopic':
    case 'DuplicateHeaders':
    case 'InvalidPushType':
    case 'MissingDeviceToken':
    case 'MissingTopic':
    case 'PayloadEmpty':
    case 'TopicDisallowed':
    case 'BadCertificate':
    case 'BadCertificateEnvironment':
    case 'Forbidden':
    case 'InvalidProviderToken':
    case 'MissingProviderToken':
    case 'UnrelatedKeyIdInToken':
    case 'BadPath':
    case 'MethodNotAllowed':
    case 'PayloadTooLarge':
      return { kind: 'failed', reason: said };
  }
  // An unknown reason: the status decides.
  if (status === 429 || status >= 500) return { kind: 'retry', reason: said, afterMs: answer.retryAfterMs };
  if (status === 410) return { kind: 'dead', reason: said };
  return { kind: 'failed', reason: said };
}

/** One HTTP/2 connection and the streams it carries. */
interface Connection {
  session: http2.ClientHttp2Session;
  active: number;
  /** APNs: until a request with a valid token succeeds, only one stream is allowed. */
  confirmed: boolean;
  /** After GOAWAY no new streams go here. */
  draining: boolean;
  lastUsed: number;
}

class ConnectionLost extends Error {}

/** A request on the wire: when it started, and how to give up on it. */
interface InFlightRequest {
  startedAt: number;
  cancel(): void;
}

export class ApnsChannel implements PushChannel {
  readonly provider = 'apns' as const;
  private key: Promise<CryptoKey>;
  /** `value` is set once the signing has finished. */
  private providerToken?: { jwt: Promise<string>; signedAt: number; value?: string };
  private connection?: Connection;
  /** Requests waiting for a free stream, first come first served (head-indexed: shift() is O(n)). */
  private waiting: Array<() => void> = [];
  private waitingHead = 0;
  private closed = false;
  private pinger: NodeJS.Timeout;
  private readonly inFlight = new Set<InFlightRequest>();
  private timeoutSweeper: NodeJS.Timeout;
  /**
   * The devices of a user share one notification object per outbox batch: its payload is
   * serialised once, not once per device. Weak, so it lives as long as the batch does.
   */
  private readonly pushes = new WeakMap<Notification, ApnsPush>();

  constructor(private readonly options: ApnsOptions) {
    if (!/^[A-Z0-9]{10}$/.test(options.keyId)) throw new Error('HERALD_APNS_KEY_ID must be the 10-character key id');
    if (!/^[A-Z0-9]{10}$/.test(options.teamId)) throw new Error('HERALD_APNS_TEAM_ID must be the 10-character team id');
    this.key = importPKCS8(options.keyPem, 'ES256');
    // Surface an unusable key at start rather than on the first push.
    this.key.catch(() => {});
    this.pinger = setInterval(() => this.pingIfIdle(), IDLE_PING_MS).unref();
    this.timeoutSweeper = setInterval(() => this.cancelOverdueRequests(), TIMEOUT_SWEEP_MS).unref();
  }

  static async fromConfig(config: Config, log?: Logger): Promise<ApnsChannel> {
    const apns = config.apns;
    if (!apns) throw new Error('APNs is not configured');
    let keyPem: string;
    try {
      keyPem = fs.readFileSync(apns.keyFile, 'utf8');
    } catch (error) {
      throw new Error(`HERALD_APNS_KEY_FILE ${apns.keyFile} cannot be read: ${(error as Error).message}`);
    }
    const channel = new ApnsChannel({
      keyPem,
      keyId: apns.keyId,
      teamId: apns.teamId,
      topic: apns.topic,
      url: apns.url,
      ca: config.caFile ? fs.readFileSync(config.caFile, 'utf8') : undefined,
      log,
    });
    try {
      await channel.key;
    } catch (error) {
      throw new Error(`HERALD_APNS_KEY_FILE ${apns.keyFile} is not a PKCS#8 P-256 key: ${(error as Error).message}`);
    }
    return channel;
  }

  async send(target: PushTarget, notification: Notification): Promise<SendOutcome> {
    let push = this.pushes.get(notification);
    if (!push) {
      push = apnsPush(notification);
      this.pushes.set(notification, push);
    }
    // Only a long payload can exceed the limit in bytes (a UTF-8 character is at most 3 bytes per UTF-16 unit).
    if (push.payload.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(push.payload) > MAX_PAYLOAD_BYTES) {
      return { kind: 'failed', reason: `payload of ${Buffer.byteLength(push.payload)} bytes exceeds the APNs limit of 4096` };
    }
    try {
      let answer = await this.request(target.token, push, notification.id);
      if (answer.reason === 'ExpiredProviderToken') {
        // Concurrent requests all see the same refusal; sign anew once, not once each.
        if (this.providerToken && Date.now() - this.providerToken.signedAt > 60_000) this.providerToken = undefined;
        answer = await this.request(target.token, push, notification.id);
      }
      return apnsOutcome(answer);
    } catch (error) {
      return { kind: 'retry', reason: `APNs connection: ${(error as Error).message}` };
    }
  }

  /** Sends one push; a stream refused by a GOAWAY is sent again on a new connection. */
  async request(token: string, push: ApnsPush, apnsId: string = randomUUID()): Promise<ApnsAnswer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.requestOnce(token, push, apnsId);
      } catch (error) {
        if (!(error instanceof ConnectionLost) || attempt >= 3 || this.closed) throw error;
      }
    }
  }

  private async requestOnce(token: string, push: ApnsPush, apnsId: string): Promise<ApnsAnswer> {
    const jwt = this.signedProviderToken() ?? (await this.currentProviderToken());
    const connection = this.takeFreeStream() ?? (await this.acquireStream());
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': `/3/device/${token}`,
      authorization: `bearer ${jwt}`,
      'apns-topic': this.options.topic,
      'apns-push-type': push.pushType,
      'apns-priority': String(push.priority),
      'apns-expiration': String(push.expiration),
      'apns-id': apnsId,
      'content-type': 'application/json',
    };
    if (push.collapseId) headers['apns-collapse-id'] = push.collapseId;
    return new Promise<ApnsAnswer>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, answer?: ApnsAnswer) => {
        if (settled) return;
        settled = true;
        this.inFlight.delete(request);
        this.releaseStream(connection);
        if (error) reject(error);
        else resolve(answer!);
      };
      let stream: http2.ClientHttp2Stream;
      const request: InFlightRequest = {
        startedAt: Date.now(),
        cancel: () => {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          finish(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`));
        },
      };
      try {
        stream = connection.session.request(headers, { endStream: false });
      } catch (error) {
        connection.draining = true;
        finish(new ConnectionLost((error as Error).message));
        return;
      }
      this.inFlight.add(request);
      let status = 0;
      let responseHeaders: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        responseHeaders = h;
        status = Number(h[':status']);
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (status === 0) return finish(new ConnectionLost('stream ended without a response'));
        const answer: ApnsAnswer = { status, apnsId: responseHeaders['apns-id'] as string | undefined };
        if (chunks.length > 0) {
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { reason?: string; timestamp?: number };
            answer.reason = body.reason;
            if (typeof body.timestamp === 'number') answer.timestamp = body.timestamp;
          } catch {
            answer.reason = `unreadable body`;
          }
        }
        answer.retryAfterMs = parseRetryAfter(responseHeaders['retry-after']);
        // Any answer other than a refused provider token shows that the token is good.
        if (status !== 403) connection.confirmed = true;
        finish(undefined, answer);
      });
      stream.on('error', (error) => {
        // A stream refused by GOAWAY or a closed session was never processed: send it again.
        finish(new ConnectionLost(error.message));
      });
      stream.on('close', () => {
        if (!settled) finish(new ConnectionLost(`stream closed with code ${stream.rstCode}`));
      });
      stream.end(push.payload);
    });
  }

  /** The current provider token when it is signed and still fresh, without waiting a turn for a promise. */
  private signedProviderToken(): string | undefined {
    const current = this.providerToken;
    if (current?.value !== undefined && Date.now() - current.signedAt < PROVIDER_TOKEN_LIFETIME_MS) return current.value;
    return undefined;
  }

  /** The ES256 provider token {alg, kid}{iss, iat}, re-signed every 50 minutes. */
  private async currentProviderToken(): Promise<string> {
    const now = Date.now();
    if (this.providerToken && now - this.providerToken.signedAt < PROVIDER_TOKEN_LIFETIME_MS) return this.providerToken.jwt;
    // One signing shared by every concurrent request: APNs answers TooManyProviderTokenUpdates
    // when the token changes too often.
    const jwt = this.key.then((key) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: this.options.keyId })
        .setIssuer(this.options.teamId)
        .setIssuedAt(Math.floor(now / 1000))
        .sign(key),
    );
    const providerToken: { jwt: Promise<string>; signedAt: number; value?: string } = { jwt, signedAt: now };
    this.providerToken = providerToken;
    jwt.then(
      (value) => (providerToken.value = value),
      () => {
        if (this.providerToken === providerToken) this.providerToken = undefined;
      },
    );
    return jwt;
  }

  private streamLimit(connection: Connection): number {
    if (!connection.confirmed) return 1;
    const advertised = connection.session.remoteSettings.maxConcurrentStreams ?? 100;
    return Math.max(1, Math.min(advertised, MAX_STREAMS_CAP));
  }

  /** A free stream on the live connection, if there is one now. */
  private takeFreeStream(): Connection | undefined {
    const connection = this.connection;
    if (this.closed || !connection || connection.draining || connection.session.closed || connection.session.destroyed) return undefined;
    // Those already waiting go first.
    if (this.waitingHead < this.waiting.length || connection.active >= this.streamLimit(connection)) return undefined;
    connection.active++;
    connection.lastUsed = Date.now();
    return connection;
  }

  /** Waits for a free stream on a live connection, connecting when there is none. */
  private async acquireStream(): Promise<Connection> {
    for (;;) {
      if (this.closed) throw new Error('APNs channel is closed');
      const connection = await this.liveConnection();
      if (connection.active < this.streamLimit(connection)) {
        connection.active++;
        connection.lastUsed = Date.now();
        return connection;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private releaseStream(connection: Connection): void {
    connection.active--;
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    const connection = this.connection;
    let free = connection && !connection.draining ? this.streamLimit(connection) - connection.active : 1;
    while (free > 0 && this.waitingHead < this.waiting.length) {
      const wake = this.waiting[this.waitingHead++];
      free--;
      wake();
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    } else if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.waitingHead);
      this.waitingHead = 0;
    }
  }

  private wakeAll(): void {
    const waiters = this.waiting.slice(this.waitingHead);
    this.waiting = [];
    this.waitingHead = 0;
    for (const wake of waiters) wake();
  }

  private connecting?: Promise<Connection>;

  private async liveConnection(): Promise<Connection> {
    const current = this.connection;
    if (current && !current.draining && !current.session.closed && !current.session.destroyed) return current;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private connect(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(this.options.url, {
        ...(this.options.ca ? { ca: this.options.ca } : {}),
        // APNs: TLS 1.2 or later.
        minVersion: 'TLSv1.2',
      });
      const connection: Connection = { session, active: 0, confirmed: false, draining: false, lastUsed: Date.now() };
      const retire = () => {
        connection.draining = true;
        if (this.connection === connection) this.connection = undefined;
        // Waiters move on to a new connection.
        this.wakeAll();
      };
      session.once('connect', () => {
        this.connection = connection;
        resolve(connection);
      });
      session.on('remoteSettings', () => this.wakeWaiters());
      session.on('goaway', (code, _lastStreamId, opaqueData) => {
        // APNs: the reason may come as JSON in the GOAWAY's debug data.
        const why = opaqueData && opaqueData.length > 0 ? opaqueData.toString('utf8') : `code ${code}`;
        this.options.log?.warn({ why }, 'APNs sent GOAWAY; reconnecting');
        retire();
      });
      session.on('error', (error) => {
        this.options.log?.warn({ err: error }, 'APNs connection error');
        reject(error);
      });
      session.on('close', retire);
    });
  }

  private cancelOverdueRequests(): void {
    const overdue = Date.now() - REQUEST_TIMEOUT_MS;
    for (const request of this.inFlight) if (request.startedAt <= overdue) request.cancel();
  }

  private pingIfIdle(): void {
    const connection = this.connection;
    if (!connection || connection.active > 0 || Date.now() - connection.lastUsed < IDLE_PING_MS) return;
    connection.session.ping((error) => {
      if (error) connection.session.destroy();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pinger);
    clearInterval(this.timeoutSweeper);
    this.wakeAll();
    const session = this.connection?.session;
    this.connection = undefined;
    if (session && !session.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          session.destroy();
          resolve();
        }, 2000);
        session.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
