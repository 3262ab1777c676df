import fs from 'node:fs';
import http2 from 'node:http2';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import type { Notification } from '../../model/notification.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../../model/channel.ts';
import { parseRetryAfter } from '../push-common.ts';
import { apnsPush, preparePush, type PreparedPush } from './payload.ts';
import { apnsOutcome, type ApnsAnswer } from './outcomes.ts';
import { ProviderToken } from './provider-token.ts';
import { PayloadCache } from '../payload-cache.ts';
import { streamOptions } from './stream-options.ts';
import { ApnsConnection, IDLE_PING_MS, type ConnectionOwner } from './connection.ts';
import { ConnectionLost, PushRequest, type PushStream, type RequestOwner } from './push-request.ts';

/*
 * Apple Push Notification service over its HTTP/2 provider API with token (JWT) auth:
 * one long-lived connection, as many streams in flight as the peer allows.
 */

const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Requests past REQUEST_TIMEOUT_MS are cancelled by one sweep this often (so after 30–35 s),
 * rather than by a timer per stream: at thousands of pushes a second a timer each costs more
 * than the push's own bookkeeping.
 */
const TIMEOUT_SWEEP_MS = 5_000;
// APNs: payloads are at most 4096 bytes.
const MAX_PAYLOAD_BYTES = 4096;
/** A stream refused by GOAWAY or a lost connection is sent again, at most this many times in all. */
const MAX_STREAM_ATTEMPTS = 3;

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

export class ApnsChannel implements PushChannel, ConnectionOwner, RequestOwner {
  readonly provider = 'apns' as const;
  private readonly token: ProviderToken;
  private connection?: ApnsConnection;
  private connecting = false;
  /** Pushes waiting for a stream, a provider token or a connection, first come first served (head-indexed). */
  private queue: Array<PushRequest | undefined> = [];
  private queueHead = 0;
  private closed = false;
  private pinger: NodeJS.Timeout;
  private readonly inFlight = new Set<PushRequest>();
  private timeoutSweeper: NodeJS.Timeout;
  /** The notification's push, prepared once and shared by its devices, or why it cannot be sent. */
  private readonly pushes = new PayloadCache<PreparedPush | SendOutcome>(preparedPush);
  private readonly streamOptions = streamOptions();
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
    this.token = new ProviderToken(options.keyPem, options.keyId, options.teamId);
    this.pinger = setInterval(() => this.connection?.pingIfIdle(), IDLE_PING_MS).unref();
    this.timeoutSweeper = setInterval(() => this.cancelOverdueRequests(), TIMEOUT_SWEEP_MS).unref();
  }

  static async fromConfig(config: Config, log?: Logger): Promise<ApnsChannel> {
    const apns = config.apns;
    if (!apns) throw new Error('APNs is not configured');
    let keyPem: string;
    try {
      keyPem = fs.readFileSync(apns.keyFile, 'utf8');
    } catch (error) {
      throw new Error(`HERALD_APNS_KEY_FILE ${apns.keyFile} cannot be read: ${(error as Error).message}`, { cause: error });
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
      // Surface an unusable key at start rather than on the first push.
      await channel.token.key;
    } catch (error) {
      throw new Error(`HERALD_APNS_KEY_FILE ${apns.keyFile} is not a PKCS#8 P-256 key: ${(error as Error).message}`, { cause: error });
    }
    return channel;
  }

  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    this.sendToToken(target.token, notification, context, done);
  }

  /** send() for a caller that knows only the device token (the push thread): APNs needs nothing else. */
  sendToToken<C>(token: string, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    const prepared = this.pushes.get(notification);
    if ('kind' in prepared) return done(prepared, context);
    this.enqueue(new PushRequest(this, `/3/device/${token}`, prepared, context, done));
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
      const authorization = this.token.header();
      if (authorization === undefined) {
        this.token.sign(this.tokenSigned, this.tokenFailed);
        return this.compactQueue();
      }
      const connection = this.connection?.usable ? this.connection : undefined;
      if (!connection) {
        this.openConnection();
        return this.compactQueue();
      }
      // A stream that ends drains the queue again.
      if (connection.active >= connection.streamLimit()) return this.compactQueue();
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

  private readonly tokenSigned = (): void => this.drain();
  private readonly tokenFailed = (error: Error): void => this.failQueued(error);

  /** Drops the queue's taken head once it outweighs what still waits (a queue that never empties would only grow). */
  private compactQueue(): void {
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private start(request: PushRequest, connection: ApnsConnection, authorization: string): void {
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
    headers['apns-id'] = push.apnsId;
    headers['apns-priority'] = push.priority;
    headers['apns-collapse-id'] = push.collapseId;
    let stream: PushStream;
    try {
      stream = connection.session.request(headers, this.streamOptions);
    } catch (error) {
      connection.draining = true;
      this.finish(request, new ConnectionLost((error as Error).message));
      return;
    }
    this.inFlight.add(request);
    request.listen(stream);
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
    if (answer.reason === 'ExpiredProviderToken' && !request.resigned) {
      request.resigned = true;
      this.token.refused();
      request.attempts = 0;
      this.queue.push(request);
      return;
    }
    const push = request.push;
    request.done(answer.status === 200 && answer.apnsId === push.apnsId ? push.delivered : apnsOutcome(answer), request.context as never);
  }

  private settle(request: PushRequest, error: Error): void {
    request.done({ kind: 'retry', reason: `APNs connection: ${error.message}` }, request.context as never);
  }

  private failQueued(error: Error): void {
    const waiting = this.queue.slice(this.queueHead);
    this.queue.length = 0;
    this.queueHead = 0;
    for (const request of waiting) this.settle(request!, error);
  }

  private openConnection(): void {
    if (this.connecting) return;
    this.connecting = true;
    ApnsConnection.open(this.options.url, this.options.ca, this.options.log, this).then(
      (connection) => {
        this.connecting = false;
        this.connection = connection;
        this.drain();
      },
      (error: Error) => {
        this.connecting = false;
        this.failQueued(error);
      },
    );
  }

  /** ConnectionOwner: the peer's settings came. */
  settingsChanged(): void {
    this.drain();
  }

  /** ConnectionOwner: waiting pushes move on to a new connection. */
  retired(connection: ApnsConnection): void {
    if (this.connection === connection) this.connection = undefined;
    this.drain();
  }

  private cancelOverdueRequests(): void {
    const overdue = Date.now() - REQUEST_TIMEOUT_MS;
    for (const request of this.inFlight) {
      if (request.startedAt > overdue) continue;
      request.stream?.close(http2.constants.NGHTTP2_CANCEL);
      this.finish(request, new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pinger);
    clearInterval(this.timeoutSweeper);
    this.failQueued(new Error('APNs channel is closed'));
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close();
  }
}

/** The notification's push, or why it cannot be sent. */
function preparedPush(notification: Notification): PreparedPush | SendOutcome {
  const push = apnsPush(notification);
  // Only a long payload can exceed the limit in bytes (a UTF-8 character is at most 3 bytes per UTF-16 unit).
  if (push.payload.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(push.payload) > MAX_PAYLOAD_BYTES) {
    return { kind: 'failed', reason: `payload of ${Buffer.byteLength(push.payload)} bytes exceeds the APNs limit of 4096` };
  }
  return preparePush(push, notification.id);
}
