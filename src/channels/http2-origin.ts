import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import { AsyncResource } from 'node:async_hooks';
import type { Logger } from 'pino';
import { leanBind } from './lean-async-bind.ts';
import { streamOptions } from './apns/stream-options.ts';

const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Requests past REQUEST_TIMEOUT_MS are cancelled by one sweep this often (so after 30–35 s),
 * as APNs pushes are, rather than by a timer per stream (stream.setTimeout re-arms its timer
 * on every frame the stream reads or writes).
 */
const TIMEOUT_SWEEP_MS = 5_000;
/** Never more streams at once than this, whatever the peer advertises. */
const MAX_STREAMS_CAP = 1000;
/** What to assume until the peer's SETTINGS arrive (RFC 9113 recommends allowing at least 100). */
const DEFAULT_STREAMS = 100;
/** How long close() waits for open streams before it destroys the session. */
const CLOSE_GRACE_MS = 2000;

/** AsyncResource#bind as Node has it, and one without the deprecated accessor (see lean-async-bind.ts). */
const nodeBind = AsyncResource.prototype.bind;
function bindWithoutAccessor<Func extends (...args: any[]) => unknown>(this: AsyncResource, fn: Func, thisArg?: unknown): Func {
  return leanBind(this, fn, thisArg);
}

/**
 * Whether session.request() runs with the lean bind: on a Node whose bind adds the
 * deprecated `asyncResource` accessor (DEP0172), which cost about a tenth of Herald's CPU
 * time pushing to the FCM double (its two util.deprecate wrappers per request), unless
 * HERALD_NO_LEAN_BIND=1. Unlike a push thread, the main thread runs everything else too,
 * so the lean bind is set only around the call and Node's own put back at once. (In a push
 * thread installLeanAsyncBind() has replaced bind already, and the probe finds nothing to do.)
 */
function leanRequests(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.HERALD_NO_LEAN_BIND === '1') return false;
  const probe = new AsyncResource('HeraldBindProbe').bind(() => {});
  return Object.prototype.hasOwnProperty.call(probe, 'asyncResource');
}

/** How a request went: its whole answer, or why there is none. */
export type Answered<C> = (error: Error | undefined, answer: Http2Answer | undefined, context: C) => void;

export interface Http2Answer {
  status: number;
  body: string;
  headers: http2.IncomingHttpHeaders;
}

export interface Http2OriginOptions {
  /** Who the origin is, in log lines: `FCM`, `Web Push https://…`. */
  name: string;
  /** Trusted certificates (HERALD_CA_FILE) instead of Node's. */
  ca?: string;
  log?: Logger;
  /** How host names are resolved (a check of the address connected to, say). */
  lookup?: net.LookupFunction;
  /** A connection already open to the origin with h2 agreed by ALPN: the first session runs on it. */
  socket?: tls.TLSSocket;
  /** Answers with this status are handed over with an empty body, theirs left unread (FCM's 200 in a push thread). */
  unreadBodyStatus?: number;
}

/** Where a stream's listeners find the request it carries. */
const ORIGIN_REQUEST = Symbol('http2 origin request');
type RequestStream = http2.ClientHttp2Stream & { [ORIGIN_REQUEST]?: OriginRequest };

/**
 * One request on its way, from the queue through its stream to its answer. Thousands are
 * in flight at once, so a request carries its state in this one object: the stream's
 * listeners are shared functions (below) that find it through the stream, and a request
 * costs no closure per event, as APNs pushes do (src/channels/apns/push-request.ts).
 */
class OriginRequest {
  stream: RequestStream | undefined = undefined;
  status = 0;
  responseHeaders: http2.IncomingHttpHeaders | undefined = undefined;
  chunks: Buffer[] | undefined = undefined;
  startedAt = 0;
  settled = false;

  constructor(
    readonly origin: Http2Origin,
    readonly headers: http2.OutgoingHttpHeaders,
    readonly body: string | Buffer,
    readonly context: unknown,
    readonly answered: Answered<never>,
  ) {}

  /** How it went: called once, with the whole answer or the error. */
  finish(error: Error | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.origin.streamDone(this);
    if (error) return this.answered(error, undefined, this.context as never);
    const chunks = this.chunks;
    const body = chunks === undefined ? '' : chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
    this.answered(undefined, { status: this.status, body, headers: this.responseHeaders! }, this.context as never);
  }
}

function onResponse(this: RequestStream, headers: http2.IncomingHttpHeaders, flags: number): void {
  const request = this[ORIGIN_REQUEST];
  if (request?.stream !== this) return;
  request.responseHeaders = headers;
  request.status = Number(headers[':status']);
  // An answer of headers alone (END_STREAM set on them) has no body to read; a stream
  // nobody reads still ends once its last frame has come. A body nobody wants flows by unread.
  if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) return;
  if (request.status === request.origin.unreadBodyStatus) this.resume();
  else this.on('data', onData);
}

function onData(this: RequestStream, chunk: Buffer): void {
  const request = this[ORIGIN_REQUEST];
  if (request?.stream !== this) return;
  (request.chunks ??= []).push(chunk);
}

function onError(this: RequestStream, error: Error): void {
  const request = this[ORIGIN_REQUEST];
  if (request?.stream === this) request.finish(error);
}

/**
 * A stream closes once its answer has been read to the end, or it failed: the one place a
 * request learns that it is done, which spares an 'end' listener per stream.
 */
function onClose(this: RequestStream): void {
  const request = this[ORIGIN_REQUEST];
  if (request?.stream !== this || request.settled) return;
  // A stream destroyed with its session (close()'s grace ran out, the connection was
  // lost) ends without a response: no answer, so the message is retried, never failed.
  if (request.status === 0) return request.finish(new Error(this.readableEnded ? 'stream ended without a response' : 'no answer'));
  // Closed without a whole answer: reset by the peer, cancelled after the timeout, or the connection was lost.
  if (!this.readableEnded) return request.finish(new Error(this.rstCode ? `stream reset (code ${this.rstCode})` : 'no answer'));
  request.finish(undefined);
}

/**
 * One HTTP/2 connection to an origin (FCM's fcm.googleapis.com, a Web Push service), carrying every request
 * as a stream of its own, as many at once as the peer's SETTINGS allow; requests past that
 * wait in order. A connection that is lost or told to go away (GOAWAY) is replaced by a
 * new one on the next request; requests already on it fail and are retried by the outbox.
 */
export class Http2Origin {
  private session?: http2.ClientHttp2Session;
  private active = 0;
  /** Requests waiting for a stream, first come first served (head-indexed). */
  private waiting: Array<OriginRequest | undefined> = [];
  private waitingHead = 0;
  /** next() is handing out streams. */
  private waking = false;
  private closed = false;
  private readonly lean = leanRequests();
  private readonly streamOptions = streamOptions();
  /** The requests on a stream, waiting for an answer. */
  private readonly inFlight = new Set<OriginRequest>();
  private readonly timeoutSweeper: NodeJS.Timeout;
  private socket?: tls.TLSSocket;
  readonly unreadBodyStatus: number | undefined;

  constructor(
    private readonly origin: string,
    private readonly options: Http2OriginOptions,
  ) {
    this.socket = options.socket;
    this.unreadBodyStatus = options.unreadBodyStatus;
    this.timeoutSweeper = setInterval(() => this.cancelOverdueRequests(), TIMEOUT_SWEEP_MS).unref();
  }

  private cancelOverdueRequests(): void {
    const overdue = Date.now() - REQUEST_TIMEOUT_MS;
    for (const request of this.inFlight) {
      if (request.startedAt > overdue) continue;
      request.stream?.close(http2.constants.NGHTTP2_CANCEL);
    }
  }

  /**
   * POSTs `body` with `headers` (':method' and ':path' among them; node:http2 only reads
   * the object, so a caller may hand the same one to every request) and reads the whole
   * answer, then calls `answered` once, with the answer or the error: a connection error,
   * a reset stream or 30–35 s without an answer. Callbacks rather than a promise: at
   * thousands of messages a second a promise chain per message costs more than its
   * bookkeeping.
   */
  post<C>(headers: http2.OutgoingHttpHeaders, body: string | Buffer, context: C, answered: Answered<C>): void {
    const request = new OriginRequest(this, headers, body, context, answered as Answered<never>);
    if (this.closed) return request.finish(new Error('the channel is closed'));
    // A waiting request is woken with its stream already counted (see next()).
    if (this.active < this.streamLimit()) {
      this.active++;
      this.start(request);
    } else {
      this.waiting.push(request);
    }
  }

  /** A POST to `path` for a caller that awaits: one promise per request. */
  postAndWait(path: string, headers: http2.OutgoingHttpHeaders, body: string | Buffer): Promise<Http2Answer> {
    return new Promise((resolve, reject) => {
      this.post({ ':method': 'POST', ':path': path, ...headers }, body, undefined, (error, answer) =>
        error ? reject(error) : resolve(answer!),
      );
    });
  }

  /** A request's stream is done (or it never got one): it is free for the next. */
  streamDone(request: OriginRequest): void {
    // A request that failed before it was counted (the channel closed) holds no stream.
    if (request.startedAt === 0) return;
    this.inFlight.delete(request);
    this.active--;
    this.next();
  }

  /**
   * Hands free streams to waiting requests, in order. A request that fails at once (the
   * channel closed, the session gone) frees its stream from inside this loop: the loop,
   * already running, hands it on, rather than a call per request on the stack.
   */
  private next(): void {
    if (this.waking) return;
    this.waking = true;
    try {
      while (this.waitingHead < this.waiting.length && (this.closed || this.active < this.streamLimit())) {
        const request = this.waiting[this.waitingHead]!;
        this.waiting[this.waitingHead++] = undefined;
        this.active++;
        this.start(request);
      }
    } finally {
      this.waking = false;
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
  }

  private streamLimit(): number {
    const advertised = this.session?.remoteSettings.maxConcurrentStreams;
    return Math.max(1, Math.min(advertised ?? DEFAULT_STREAMS, MAX_STREAMS_CAP));
  }

  private connection(): http2.ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const { ca, lookup, log, name } = this.options;
    const socket = this.socket;
    this.socket = undefined;
    const session = http2.connect(this.origin, {
      ...(ca ? { ca } : {}),
      ...(lookup ? { lookup } : {}),
      ...(socket ? { createConnection: () => socket } : {}),
      minVersion: 'TLSv1.2',
    });
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    session.on('goaway', (code) => {
      log?.warn({ code }, `${name} sent GOAWAY; the next request opens a new connection`);
      forget();
    });
    session.on('close', forget);
    session.on('error', (error) => {
      log?.warn({ err: error }, `${name} connection error`);
      forget();
    });
    // A larger limit from the peer lets waiting requests go.
    session.on('remoteSettings', () => this.next());
    this.session = session;
    return session;
  }

  /** Puts a request, its stream already counted in `active`, on a stream of the connection. */
  private start(request: OriginRequest): void {
    request.startedAt = Date.now();
    if (this.closed) return request.finish(new Error('the channel is closed'));
    let stream: RequestStream;
    try {
      stream = this.open(this.connection(), request.headers);
    } catch (error) {
      // The session went away between the check and the request (ERR_HTTP2_GOAWAY_SESSION …).
      this.session = undefined;
      return request.finish(error as Error);
    }
    this.inFlight.add(request);
    stream[ORIGIN_REQUEST] = request;
    request.stream = stream;
    stream.on('response', onResponse);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.end(request.body);
  }

  private open(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): RequestStream {
    if (!this.lean) return session.request(headers, this.streamOptions);
    AsyncResource.prototype.bind = bindWithoutAccessor;
    try {
      return session.request(headers, this.streamOptions);
    } finally {
      AsyncResource.prototype.bind = nodeBind;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timeoutSweeper);
    // Waiting requests fail at once.
    this.next();
    // A connection handed over but never used.
    this.socket?.destroy();
    this.socket = undefined;
    const session = this.session;
    this.session = undefined;
    if (session) await closeSession(session, CLOSE_GRACE_MS);
  }
}

/** Closes an HTTP/2 session, letting its open streams finish for up to `graceMs`, then destroys it. */
export function closeSession(session: http2.ClientHttp2Session, graceMs: number): Promise<void> {
  if (session.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      session.destroy();
      resolve();
    }, graceMs);
    session.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
