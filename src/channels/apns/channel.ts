import fs from 'node:fs';
import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { importPKCS8, SignJWT, type CryptoKey } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import type { Notification } from '../../model/notification.ts';
import { parseRetryAfter } from '../push-common.ts';
import { apnsPush, type ApnsPush } from './payload.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../../model/channel.ts';

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

/** A stream refused by GOAWAY or a lost connection is sent again, at most this many times in all. */
const MAX_STREAM_ATTEMPTS = 3;
/**
 * Every stream's options, with the priority fields node:http2 would otherwise fill in
 * itself (its defaults: weight 16, no parent, not exclusive, not silent). session.request
 * copies the options and sets each missing field on the copy, which cost about 10 µs of
 * CPU per request here; given, they are only checked.
 */
const REQUEST_OPTIONS = {
  endStream: false,
  weight: http2.constants.NGHTTP2_DEFAULT_WEIGHT,
  parent: 0,
  exclusive: false,
  silent: false,
} as http2.ClientSessionRequestOptions;
/** Where a stream's listeners find the push it carries. */
const PUSH_REQUEST = Symbol('apns push request');
type PushStream = http2.ClientHttp2Stream & { [PUSH_REQUEST]?: PushRequest };

/**
 * A push as it goes on the wire, made once per notification and shared by the pushes to
 * all of its user's devices: the payload's bytes and the header values that do not depend
 * on the device.
 */
interface PreparedPush {
  payload: Buffer;
  pushType: string;
  expiration: string;
  /** Undefined for priority 10, which APNs assumes when the header is absent. */
  priority: string | undefined;
  collapseId: string | undefined;
}

function preparePush(push: ApnsPush): PreparedPush {
  return {
    payload: Buffer.from(push.payload),
    pushType: push.pushType,
    expiration: String(push.expiration),
    // APNs: without apns-priority a push is sent at priority 10 (immediately).
    priority: push.priority === 10 ? undefined : String(push.priority),
    collapseId: push.collapseId || undefined,
  };
}

/** How a push's answer is handed back: an outcome (send, sendWith) or APNs' raw answer (request). */
const enum Reply {
  /** send(): a promise of the outcome; `delivered` carries the apns-id. */
  Outcome,
  /** sendWith(): a callback with the outcome and the caller's context; `delivered` is one shared object. */
  BriefOutcome,
  /** request(): a promise of the answer as it is, rejected when none can be had. */
  Answer,
}

/** sendWith()'s answer to a push APNs accepted. */
const DELIVERED: SendOutcome = Object.freeze({ kind: 'delivered' }) as SendOutcome;

/**
 * One push on its way, from the queue through its stream to its answer. Thousands are in
 * flight at once, so a push carries its state in this one object: the stream's listeners
 * are shared functions (below) that find it through the stream, and a push costs no
 * closure per event and, from the outbox (sendWith), no promise at all.
 */
class PushRequest {
  stream: PushStream | undefined = undefined;
  connection: Connection | undefined = undefined;
  status = 0;
  responseHeaders: http2.IncomingHttpHeaders | undefined = undefined;
  body: Buffer[] | undefined = undefined;
  startedAt = 0;
  /** Streams this push was put on (a stream refused by GOAWAY is sent again on a new connection). */
  attempts = 0;
  settled = false;
  /** send(): the provider token was refused as expired once, and a new one tried. */
  resigned = false;

  constructor(
    readonly channel: ApnsChannel,
    readonly path: string,
    readonly push: PreparedPush,
    readonly apnsId: string,
    readonly reply: Reply,
    /** Outcome and BriefOutcome: called with the outcome (and `context`); Answer: with the answer. */
    readonly resolve: (value: any, context: unknown) => void,
    /** Answer only: called when no answer can be had. */
    readonly reject: ((error: Error) => void) | undefined,
    readonly context: unknown,
  ) {}
}

function onResponse(this: PushStream, headers: http2.IncomingHttpHeaders, flags: number): void {
  const request = this[PUSH_REQUEST];
  if (request?.stream !== this) return;
  request.responseHeaders = headers;
  request.status = Number(headers[':status']);
  // APNs answers a push it accepts with headers alone (END_STREAM set on them); only an
  // answer with a body (the reason) needs reading. A stream nobody reads still ends once
  // its last frame has come, so an empty one needs no 'data' listener.
  if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0) this.on('data', onData);
}

function onData(this: PushStream, chunk: Buffer): void {
  const request = this[PUSH_REQUEST];
  if (request?.stream !== this) return;
  (request.body ??= []).push(chunk);
}

function onError(this: PushStream, error: Error): void {
  const request = this[PUSH_REQUEST];
  // A stream refused by GOAWAY or a closed session was never processed: send it again.
  if (request?.stream === this) request.channel.finish(request, new ConnectionLost(error.message));
}

/**
 * A stream closes once its answer has been read to the end (or it failed): the one place
 * a push learns that it is done, which spares an 'end' listener per stream.
 */
function onClose(this: PushStream): void {
  const request = this[PUSH_REQUEST];
  if (request?.stream !== this || request.settled) return;
  if (this.readableEnded) request.channel.streamEnded(request);
  else request.channel.finish(request, new ConnectionLost(`stream closed with code ${this.rstCode}`));
}

export class ApnsChannel implements PushChannel {
  readonly provider = 'apns' as const;
  private key: Promise<CryptoKey>;
  /** `value` (the authorization header's value) is set once the signing has finished. */
  private providerToken?: { jwt: Promise<string>; signedAt: number; value?: string };
  private connection?: Connection;
  private connecting = false;
  /** Pushes waiting for a stream, a provider token or a connection, first come first served (head-indexed). */
  private queue: Array<PushRequest | undefined> = [];
  private queueHead = 0;
  private closed = false;
  private pinger: NodeJS.Timeout;
  private readonly inFlight = new Set<PushRequest>();
  private timeoutSweeper: NodeJS.Timeout;
  /**
   * The devices of a user share one notification object per outbox batch: its payload is
   * serialised once, not once per device. Weak, so it lives as long as the batch does.
   */
  private readonly pushes = new WeakMap<Notification, PreparedPush | SendOutcome>();
  /**
   * The request headers, one object for every push: session.request copies what it is
   * given, so each push only sets its own values. Every key is always there (undefined
   * values are left out of the request), so the object keeps one shape.
   */
  private readonly headers: http2.OutgoingHttpHeaders;

  constructor(private readonly options: ApnsOptions) {
    if (!/^[A-Z0-9]{10}$/.test(options.keyId)) throw new Error('HERALD_APNS_KEY_ID must be the 10-character key id');
    if (!/^[A-Z0-9]{10}$/.test(options.teamId)) throw new Error('HERALD_APNS_TEAM_ID must be the 10-character team id');
    this.headers = {
      ':method': 'POST',
      ':path': '',
      authorization: '',
      'apns-topic': options.topic,
      'apns-push-type': '',
      'apns-expiration': '',
      'apns-id': '',
      'apns-priority': undefined,
      'apns-collapse-id': undefined,
    };
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

  /** The notification's push, prepared once and shared by its devices, or why it cannot be sent. */
  private prepared(notification: Notification): PreparedPush | SendOutcome {
    let prepared = this.pushes.get(notification);
    if (!prepared) {
      const push = apnsPush(notification);
      // Only a long payload can exceed the limit in bytes (a UTF-8 character is at most 3 bytes per UTF-16 unit).
      prepared =
        push.payload.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(push.payload) > MAX_PAYLOAD_BYTES
          ? { kind: 'failed', reason: `payload of ${Buffer.byteLength(push.payload)} bytes exceeds the APNs limit of 4096` }
          : preparePush(push);
      this.pushes.set(notification, prepared);
    }
    return prepared;
  }

  send(target: PushTarget, notification: Notification): Promise<SendOutcome> {
    const prepared = this.prepared(notification);
    if ('kind' in prepared) return Promise.resolve(prepared);
    const path = `/3/device/${target.token}`;
    return new Promise<SendOutcome>((resolve) => this.enqueue(new PushRequest(this, path, prepared, notification.id, Reply.Outcome, resolve, undefined, undefined)));
  }

  /**
   * send() for the outbox, which has thousands in flight: no promise per push. `done` is
   * called once, with the outcome and `context`; a delivered push's outcome carries no
   * detail (it is one shared object).
   */
  sendWith<C>(token: string, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    const prepared = this.prepared(notification);
    if ('kind' in prepared) return done(prepared, context);
    this.enqueue(new PushRequest(this, `/3/device/${token}`, prepared, notification.id, Reply.BriefOutcome, done as (value: any, context: unknown) => void, undefined, context));
  }

  /**
   * Sends one push and resolves to APNs' answer as it is; a stream refused by a GOAWAY is
   * sent again on a new connection. Rejects when no answer can be had.
   */
  request(token: string, push: ApnsPush, apnsId: string = randomUUID()): Promise<ApnsAnswer> {
    const prepared = preparePush(push);
    return new Promise<ApnsAnswer>((resolve, reject) =>
      this.enqueue(new PushRequest(this, `/3/device/${token}`, prepared, apnsId, Reply.Answer, resolve, reject, undefined)),
    );
  }

  private enqueue(request: PushRequest): void {
    if (this.closed) {
      this.settle(request, new Error('APNs channel is closed'));
      return;
    }
    this.queue.push(request);
    this.drain();
  }

  /** Puts waiting pushes on free streams, signing a provider token or connecting first when needed. */
  private drain(): void {
    while (this.queueHead < this.queue.length) {
      if (this.closed) {
        this.failQueued(new Error('APNs channel is closed'));
        return;
      }
      const authorization = this.signedProviderToken();
      if (authorization === undefined) {
        this.signProviderToken();
        return this.compactQueue();
      }
      const connection = this.usableConnection();
      if (!connection) {
        this.openConnection();
        return this.compactQueue();
      }
      // A stream that ends drains the queue again.
      if (connection.active >= this.streamLimit(connection)) return this.compactQueue();
      const request = this.queue[this.queueHead]!;
      // Taken: the queue no longer holds it.
      this.queue[this.queueHead++] = undefined;
      this.start(request, connection, authorization);
    }
    if (this.queueHead > 0) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
  }

  /** Drops the queue's taken head once it outweighs what still waits (a queue that never empties would only grow). */
  private compactQueue(): void {
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private start(request: PushRequest, connection: Connection, authorization: string): void {
    const now = Date.now();
    connection.active++;
    connection.lastUsed = now;
    request.connection = connection;
    request.stream = undefined;
    request.status = 0;
    request.responseHeaders = undefined;
    request.body = undefined;
    request.startedAt = now;
    request.settled = false;
    request.attempts++;
    const push = request.push;
    const headers = this.headers;
    headers[':path'] = request.path;
    headers.authorization = authorization;
    headers['apns-push-type'] = push.pushType;
    headers['apns-expiration'] = push.expiration;
    headers['apns-id'] = request.apnsId;
    headers['apns-priority'] = push.priority;
    headers['apns-collapse-id'] = push.collapseId;
    let stream: PushStream;
    try {
      stream = connection.session.request(headers, REQUEST_OPTIONS);
    } catch (error) {
      connection.draining = true;
      this.finish(request, new ConnectionLost((error as Error).message));
      return;
    }
    stream[PUSH_REQUEST] = request;
    request.stream = stream;
    this.inFlight.add(request);
    stream.on('response', onResponse);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.end(push.payload);
  }

  /** The stream of a push ended: its answer is complete. */
  streamEnded(request: PushRequest): void {
    const status = request.status;
    if (status === 0) return this.finish(request, new ConnectionLost('stream ended without a response'));
    const headers = request.responseHeaders!;
    const answer: ApnsAnswer = { status, apnsId: headers['apns-id'] as string | undefined };
    if (request.body !== undefined) {
      try {
        const body = JSON.parse(Buffer.concat(request.body).toString('utf8')) as { reason?: string; timestamp?: number };
        answer.reason = body.reason;
        if (typeof body.timestamp === 'number') answer.timestamp = body.timestamp;
      } catch {
        answer.reason = `unreadable body`;
      }
    }
    const retryAfter = headers['retry-after'];
    if (retryAfter !== undefined) answer.retryAfterMs = parseRetryAfter(retryAfter);
    // Any answer other than a refused provider token shows that the token is good.
    if (status !== 403) request.connection!.confirmed = true;
    this.finish(request, undefined, answer);
  }

  /** A push's stream is done, with an answer or an error; its stream is free for the next. */
  finish(request: PushRequest, error: Error | undefined, answer?: ApnsAnswer): void {
    if (request.settled) return;
    request.settled = true;
    this.inFlight.delete(request);
    request.connection!.active--;
    request.connection = undefined;
    if (error instanceof ConnectionLost && request.attempts < MAX_STREAM_ATTEMPTS && !this.closed) this.queue.push(request);
    else if (error) this.settle(request, error);
    else this.answered(request, answer!);
    this.drain();
  }

  private answered(request: PushRequest, answer: ApnsAnswer): void {
    if (request.reply === Reply.Answer) return request.resolve(answer, undefined);
    if (answer.reason === 'ExpiredProviderToken' && !request.resigned) {
      // Concurrent requests all see the same refusal; sign anew once, not once each.
      request.resigned = true;
      if (this.providerToken && Date.now() - this.providerToken.signedAt > 60_000) this.providerToken = undefined;
      request.attempts = 0;
      this.queue.push(request);
      return;
    }
    request.resolve(request.reply === Reply.BriefOutcome && answer.status === 200 ? DELIVERED : apnsOutcome(answer), request.context);
  }

  private settle(request: PushRequest, error: Error): void {
    if (request.reply === Reply.Answer) request.reject!(error);
    else request.resolve({ kind: 'retry', reason: `APNs connection: ${error.message}` }, request.context);
  }

  private failQueued(error: Error): void {
    const waiting = this.queue.slice(this.queueHead);
    this.queue.length = 0;
    this.queueHead = 0;
    for (const request of waiting) this.settle(request!, error);
  }

  /** The authorization header's value when the provider token is signed and still fresh. */
  private signedProviderToken(): string | undefined {
    const current = this.providerToken;
    if (current?.value !== undefined && Date.now() - current.signedAt < PROVIDER_TOKEN_LIFETIME_MS) return current.value;
    return undefined;
  }

  /**
   * Signs the ES256 provider token {alg, kid}{iss, iat}, re-signed every 50 minutes, unless a
   * signing is already under way. One signing serves every waiting push: APNs answers
   * TooManyProviderTokenUpdates when the token changes too often.
   */
  private signProviderToken(): void {
    const now = Date.now();
    if (this.providerToken && now - this.providerToken.signedAt < PROVIDER_TOKEN_LIFETIME_MS) return;
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
      (value) => {
        providerToken.value = `bearer ${value}`;
        this.drain();
      },
      (error: Error) => {
        if (this.providerToken === providerToken) this.providerToken = undefined;
        this.failQueued(error);
      },
    );
  }

  private streamLimit(connection: Connection): number {
    if (!connection.confirmed) return 1;
    const advertised = connection.session.remoteSettings.maxConcurrentStreams ?? 100;
    return Math.max(1, Math.min(advertised, MAX_STREAMS_CAP));
  }

  private usableConnection(): Connection | undefined {
    const connection = this.connection;
    if (connection && !connection.draining && !connection.session.closed && !connection.session.destroyed) return connection;
    return undefined;
  }

  private openConnection(): void {
    if (this.connecting) return;
    this.connecting = true;
    this.connect().then(
      () => {
        this.connecting = false;
        this.drain();
      },
      (error: Error) => {
        this.connecting = false;
        this.failQueued(error);
      },
    );
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
        // Waiting pushes move on to a new connection.
        this.drain();
      };
      session.once('connect', () => {
        this.connection = connection;
        resolve(connection);
      });
      session.on('remoteSettings', () => this.drain());
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
    for (const request of this.inFlight) {
      if (request.startedAt > overdue) continue;
      request.stream?.close(http2.constants.NGHTTP2_CANCEL);
      this.finish(request, new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`));
    }
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
    this.failQueued(new Error('APNs channel is closed'));
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
