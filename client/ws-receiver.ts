/**
 * A small typed receiver for Herald's WebSocket push (`/ws`). It authenticates with its
 * station, acknowledges what it received, and after a lost connection reconnects with
 * backoff and resumes with `since`, so it sees every notification exactly once in order.
 */
import WebSocket from 'ws';
import { NotificationStream } from './notification-stream.ts';
import type { CleanFrame, NotificationFrame, ServerFrame } from './frames.ts';
import { ReceiverEventSource } from './receiver-events.ts';

export type {
  NotificationFrame,
  CleanFrame,
  HelloFrame,
  SyncedFrame,
  ErrorFrame,
  ServerFrame,
  Disconnection,
  ReceiverEvents,
} from './frames.ts';

export interface ReceiverOptions {
  /** ws://host:port/ws or wss://host:port/ws */
  url: string;
  station: string;
  /** Resume after this sequence on the first connection; later ones resume after the last seen. */
  since?: number;
  /** Send the station as the Ozeki-Station header instead of the `station` query parameter. */
  stationHeader?: boolean;
  /** Extra CA certificate (PEM) to trust for wss://, e.g. Herald's self-signed one. */
  ca?: string;
  /** Acknowledge every notification as it arrives (default true). */
  autoAck?: boolean;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Close codes after which trying again cannot help. */
const REFUSALS = new Set([4400, 4401, 4403]);

/** What async iteration over a WsReceiver yields: the feed's entries, in sequence order. */
export type FeedFrame = NotificationFrame | CleanFrame;

export class WsReceiver extends ReceiverEventSource implements AsyncIterable<FeedFrame> {
  /** Highest sequence received (or the replay start announced by the server). */
  lastSeq: number | undefined;
  private socket: WebSocket | undefined;
  private stopped = false;
  private backoffMs: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private deadTimer: NodeJS.Timeout | undefined;
  private ackScheduled = false;
  /** What setActive last said; undefined: never said (acks and frames alone count as use). */
  private use: 'active' | 'idle' | undefined;
  private acked = 0;
  private pingIntervalMs = 30_000;
  private readonly streams = new Set<NotificationStream<FeedFrame>>();

  constructor(private readonly options: ReceiverOptions) {
    super();
    this.lastSeq = options.since;
    this.backoffMs = options.minBackoffMs ?? 100;
  }

  /**
   * `for await (const frame of receiver)`: every notification and clean frame from now on
   * (check `frame.type`), the same ones the events carry. The loop ends when close() is
   * called and throws when the server refuses the station.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<FeedFrame> {
    const stream = new NotificationStream<FeedFrame>((ended) => this.streams.delete(ended));
    if (this.stopped) stream.end();
    else this.streams.add(stream);
    return stream;
  }

  start(): this {
    this.stopped = false;
    this.connect();
    return this;
  }

  /** Closes for good. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.deadTimer);
    this.socket?.close(1000, 'client closing');
    for (const stream of [...this.streams]) stream.end();
  }

  /** Drops the connection as a network failure would; the receiver reconnects and resumes. */
  drop(): void {
    this.socket?.terminate();
  }

  /** Acknowledges everything up to `seq` (done automatically unless autoAck is false). */
  ack(seq: number): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: 'ack', seq }));
  }

  /**
   * Tells the server whether the user is at this device (window focused, page visible): while
   * a device is active the server holds the user's phone alerts back for a moment, and drops
   * them if the user sees the notification here. Acks of an idle device do not count as use.
   * The choice is said again after every reconnect.
   */
  setActive(active: boolean): void {
    this.use = active ? 'active' : 'idle';
    this.sendUse();
  }

  private sendUse(): void {
    if (this.use && this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: this.use }));
  }

  private connect(): void {
    const url = new URL(this.options.url);
    if (!this.options.stationHeader) url.searchParams.set('station', this.options.station);
    if (this.lastSeq !== undefined) url.searchParams.set('since', String(this.lastSeq));
    const socket = new WebSocket(url, {
      headers: this.options.stationHeader ? { 'Ozeki-Station': this.options.station } : {},
      ...(this.options.ca ? { ca: this.options.ca } : {}),
    });
    this.socket = socket;
    socket.on('message', (data) => this.receive(data.toString()));
    socket.on('ping', () => this.armDeadTimer());
    socket.on('error', () => {}); // the close that follows decides what happens
    socket.on('close', (code, reasonBytes) => {
      clearTimeout(this.deadTimer);
      if (this.socket !== socket) return;
      this.socket = undefined;
      const reason = reasonBytes.toString();
      if (this.stopped) return;
      if (REFUSALS.has(code)) {
        this.stopped = true;
        this.emit('refused', { code, reason });
        for (const stream of [...this.streams]) stream.end(new Error(`the server refused this station: ${code} ${reason}`));
        return;
      }
      const retryInMs = Math.round(this.backoffMs * (0.5 + Math.random() / 2));
      this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 10_000);
      this.emit('disconnected', { code, reason, retryInMs });
      this.reconnectTimer = setTimeout(() => this.connect(), retryInMs);
    });
  }

  /** A server that stops pinging is gone, even when the socket has not noticed yet. */
  private armDeadTimer(): void {
    clearTimeout(this.deadTimer);
    const socket = this.socket;
    this.deadTimer = setTimeout(() => socket?.terminate(), this.pingIntervalMs * 2.5);
    this.deadTimer.unref?.();
  }

  private receive(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case 'hello':
        this.sendUse();
        this.backoffMs = this.options.minBackoffMs ?? 100;
        this.pingIntervalMs = frame.ping;
        this.lastSeq = frame.since;
        this.armDeadTimer();
        this.emit('hello', frame);
        if (this.options.autoAck !== false) this.scheduleAck();
        break;
      case 'notification':
      case 'clean':
        if (this.lastSeq === undefined || frame.seq > this.lastSeq) this.lastSeq = frame.seq;
        if (frame.type === 'clean') this.emit('clean', frame);
        else this.emit('notification', frame);
        for (const stream of this.streams) stream.push(frame);
        if (this.options.autoAck !== false) this.scheduleAck();
        break;
      case 'synced':
        this.emit('synced', frame);
        break;
      case 'error':
        this.emit('serverError', frame);
        break;
    }
  }

  /** One ack per burst of frames: the highest sequence covers everything before it. */
  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      if (this.lastSeq !== undefined && this.lastSeq > this.acked) {
        this.acked = this.lastSeq;
        this.ack(this.lastSeq);
      }
    });
  }
}
