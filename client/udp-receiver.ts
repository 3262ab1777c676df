import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import {
  CounterClock,
  DatagramRefused,
  ReplayWindow,
  SERVER_TYPES,
  encodeDatagram,
  helloPayload,
  openDatagram,
  peekHeader,
  secretBytes,
  type Datagram,
} from './udp-protocol.ts';
import { NotificationStream } from './notification-stream.ts';

/** A push as the receiver hands it on: a notification, a clean, or a fetch signal. */
export interface UdpFrame {
  type: 'notification' | 'clean' | 'fetch';
  seq: number;
  id: string;
  [field: string]: unknown;
}

export interface UdpReceiverOptions {
  /** The server's UDP listener, `udp://host:port` (chatlogin's `listeners.udp`). */
  endpoint: string;
  /** This device's station id (32 hex characters). */
  station: string;
  /** The device's `udpsecret` from chatlogin or chatdevice/register (64 hex characters). */
  secret: string;
  /**
   * The last sequence this device has already handled (kept by the application across
   * runs). When set, the receiver resumes from it on registering; without it, only new
   * notifications arrive.
   */
  lastSeq?: number;
  /** Keep-alive interval; by default the one the server announces in its welcome. 0 turns keep-alives off. */
  keepAliveMs?: number;
  /** Only for tests: return true to lose an incoming datagram before it is looked at. */
  dropIncoming?: (bytes: Buffer) => boolean;
  /** Only for tests: return true to lose an outgoing datagram instead of sending it. */
  dropOutgoing?: (bytes: Buffer) => boolean;
}

/** Hello retries until a welcome arrives: the same schedule the server uses for pushes. */
const HELLO_RETRY_MS = [250, 500, 1000, 2000, 4000];
/** Sequences remembered above the contiguous mark, for de-duplication. */
const MAX_REMEMBERED = 4096;

/**
 * A desktop client's UDP receiver: registers the socket with an authenticated hello,
 * echoes the server's cookie to prove it receives at its address, keeps the binding
 * alive, acknowledges every push, hands each notification on exactly once (by sequence),
 * and resumes from the last sequence whenever the server says it does not know this
 * endpoint yet.
 *
 * Events: 'notification' (UdpFrame), 'registered' (welcome payload), 'challenged',
 * 'refused' (reason). Or `for await (const frame of receiver)`, which ends at close().
 */
export class UdpReceiver extends EventEmitter implements AsyncIterable<UdpFrame> {
  readonly stats = { received: 0, duplicates: 0, refused: 0, lost: 0 };
  private readonly socket: dgram.Socket;
  private readonly secret: Buffer;
  private readonly host: string;
  private readonly port: number;
  private readonly clock = new CounterClock();
  private readonly window = new ReplayWindow();
  /** Every sequence up to this one has been handed on (or was before this run). */
  private contiguousSeq: number;
  private readonly above = new Set<number>();
  private resumeFrom: number | undefined;
  private keepAliveTimer?: NodeJS.Timeout;
  private helloTimer?: NodeJS.Timeout;
  private registered = false;
  private closed = false;
  /** The last cookie the server sent; every hello echoes it. */
  private cookie?: string;
  private lastChallengeAnsweredAt = -Infinity;
  /** What setActive last said; undefined: never said (every ack then counts as use). */
  private use: 'active' | 'idle' | undefined;
  private readonly streams = new Set<NotificationStream<UdpFrame>>();

  constructor(private readonly options: UdpReceiverOptions) {
    super();
    const url = new URL(options.endpoint);
    if (url.protocol !== 'udp:') throw new Error('the UDP endpoint is a udp://host:port URL');
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port);
    this.secret = secretBytes(options.secret);
    this.contiguousSeq = options.lastSeq ?? 0;
    this.resumeFrom = options.lastSeq;
    this.socket = dgram.createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    this.socket.on('message', (bytes) => this.receive(bytes));
    this.socket.on('error', (error) => this.emit('socketError', error));
  }

  /** The highest sequence handed on so far; what to resume after. */
  get lastSeq(): number {
    return Math.max(this.contiguousSeq, ...this.above);
  }

  /** Sends the hello (retrying on the schedule) and resolves once the server welcomes it. */
  async start(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const welcome = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no welcome from ${this.options.endpoint} within ${timeoutMs} ms`)), timeoutMs);
      this.once('registered', (payload: Record<string, unknown>) => {
        clearTimeout(timer);
        resolve(payload);
      });
    });
    let attempt = 0;
    const hello = () => {
      if (this.closed || this.registered) return;
      this.hello();
      const delay = HELLO_RETRY_MS[Math.min(attempt++, HELLO_RETRY_MS.length - 1)];
      this.helloTimer = setTimeout(hello, delay);
    };
    hello();
    return welcome;
  }

  /**
   * Tells the server whether the user is at this device (window focused): while a device is
   * in use the server holds the user's phone alerts back for a moment and drops them if the
   * user sees the notification here. Acks of an idle device carry `"idle":true`; an active
   * one repeats its last ack now and with every keep-alive, so the server keeps counting it
   * as in use while nothing new arrives.
   */
  setActive(active: boolean): void {
    this.use = active ? 'active' : 'idle';
    this.ack(this.lastSeq);
  }

  private ack(seq: number): void {
    this.send('ack', this.use === 'idle' ? { seq, idle: true } : { seq });
  }

  /** Asks for every notification after `afterSeq` (by default the last one handed on). */
  resume(afterSeq = this.lastSeq): void {
    this.send('resume', { after: afterSeq });
  }

  /**
   * `for await (const frame of receiver)`: every frame the 'notification' event carries from
   * now on (notification, clean or fetch), once each, in the order they arrive; the loop
   * ends when close() is called.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<UdpFrame> {
    const stream = new NotificationStream<UdpFrame>((ended) => this.streams.delete(ended));
    if (this.closed) stream.end();
    else this.streams.add(stream);
    return stream;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stream of [...this.streams]) stream.end();
    clearTimeout(this.helloTimer);
    clearInterval(this.keepAliveTimer);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private hello(): void {
    this.send('hello', helloPayload(this.cookie));
  }

  private send(type: 'hello' | 'ack' | 'resume', payload: Record<string, unknown>): void {
    if (this.closed) return;
    const bytes = encodeDatagram(this.secret, { type, station: this.options.station, counter: this.clock.next(), payload });
    if (this.options.dropOutgoing?.(bytes)) return;
    this.socket.send(bytes, this.port, this.host);
  }

  private receive(bytes: Buffer): void {
    if (this.options.dropIncoming?.(bytes)) {
      this.stats.lost++;
      return;
    }
    let datagram: Datagram;
    try {
      const header = peekHeader(bytes);
      if (!SERVER_TYPES.has(header.type) || header.station !== this.options.station) throw new DatagramRefused('malformed');
      datagram = openDatagram(this.secret, bytes);
      if (!this.window.accept(datagram.counter)) throw new DatagramRefused('replayed');
    } catch (error) {
      this.stats.refused++;
      this.emit('refused', error instanceof DatagramRefused ? error.reason : 'malformed');
      return;
    }
    this.stats.received++;
    if (datagram.type === 'welcome') this.welcomed(datagram.payload);
    else if (datagram.type === 'challenge') this.challenged(datagram.payload);
    else this.pushed(datagram.payload);
  }

  /**
   * The server has not seen this address prove itself (first contact, a new NAT mapping,
   * a server restart, an expired cookie): echo its cookie at once. At most one immediate
   * answer per first retry interval, so a cookie that keeps failing cannot become a
   * ping-pong; the hello retries and keep-alives carry the cookie anyway.
   */
  private challenged(challenge: Record<string, unknown>): void {
    if (typeof challenge.cookie !== 'string') return;
    this.cookie = challenge.cookie;
    this.emit('challenged', challenge);
    const now = Date.now();
    if (now - this.lastChallengeAnsweredAt < HELLO_RETRY_MS[0]) return;
    this.lastChallengeAnsweredAt = now;
    this.hello();
  }

  private welcomed(welcome: Record<string, unknown>): void {
    if (typeof welcome.cookie === 'string') this.cookie = welcome.cookie;
    const first = !this.registered;
    this.registered = true;
    clearTimeout(this.helloTimer);
    if (first && this.resumeFrom === undefined && typeof welcome.lastseq === 'number') {
      // No history: everything up to the feed's current end counts as already seen.
      this.markSeenThrough(welcome.lastseq);
    }
    if (first) {
      const interval = this.options.keepAliveMs ?? (typeof welcome.keepalive === 'number' ? welcome.keepalive : 25_000);
      if (interval > 0) {
        this.keepAliveTimer = setInterval(() => {
          this.hello();
          if (this.use === 'active') this.ack(this.lastSeq);
        }, interval);
      }
    }
    // The server had no endpoint for us (first contact, restart, or we were silent too
    // long): whatever it pushed meanwhile is only in the feed.
    if (welcome.new === true) {
      const from = first ? this.resumeFrom : this.lastSeq;
      if (from !== undefined) this.resume(from);
    }
    this.emit('registered', welcome);
  }

  private markSeenThrough(seq: number): void {
    if (seq <= this.contiguousSeq) return;
    this.contiguousSeq = seq;
    for (const remembered of this.above) if (remembered <= seq) this.above.delete(remembered);
    while (this.above.has(this.contiguousSeq + 1)) this.above.delete(++this.contiguousSeq);
  }

  private pushed(frame: Record<string, unknown>): void {
    if (frame.type === 'resumed') {
      if (frame.more === true && typeof frame.through === 'number') this.resume(frame.through);
      return;
    }
    const seq = frame.seq;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) return;
    // Acknowledge duplicates too: the ack of the first copy may have been the one lost.
    this.ack(seq);
    if (seq <= this.contiguousSeq || this.above.has(seq)) {
      this.stats.duplicates++;
      return;
    }
    this.above.add(seq);
    while (this.above.has(this.contiguousSeq + 1)) this.above.delete(++this.contiguousSeq);
    if (this.above.size > MAX_REMEMBERED) {
      // A gap that never fills (given up by the server): move the mark past it.
      this.markSeenThrough(Math.min(...this.above));
    }
    this.emit('notification', frame as UdpFrame);
    for (const stream of this.streams) stream.push(frame as UdpFrame);
  }
}
