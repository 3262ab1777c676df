/**
 * Herald's WebSocket push (`/ws`) in a browser, on the native WebSocket: the same events and
 * the same promise as the Node receiver (ws-receiver.ts). It authenticates with its station
 * (as the `station` query parameter: a browser cannot set headers on a WebSocket),
 * acknowledges what it received, reconnects with backoff after a lost connection and resumes
 * with `since`, so every notification arrives once and in order, also across page reloads
 * when the caller keeps `lastSeq` (see `onSeq`).
 */
import { REFUSAL_CODES, type ServerFrame } from './frames.ts';
import { ReceiverEventSource } from './receiver-events.ts';

export type { CleanFrame, Disconnection, HelloFrame, NotificationFrame, ReceiverEvents, SyncedFrame } from './frames.ts';

export interface BrowserReceiverOptions {
  /** ws://host:port/ws or wss://host:port/ws; the page's own: `wss://${location.host}/ws`. */
  url: string;
  station: string;
  /** Resume after this sequence on the first connection (the one kept from the last visit). */
  since?: number;
  /** Called whenever the last sequence seen moves on, to keep it (localStorage) for the next visit. */
  onSeq?: (seq: number) => void;
  /** Acknowledge every notification as it arrives (default true). */
  autoAck?: boolean;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** A close code of our own for a connection we drop (browsers allow 1000 and 3000–4999). */
const DROPPED = 3000;

export class BrowserReceiver extends ReceiverEventSource {
  /** Highest sequence received (or the replay start announced by the server). */
  lastSeq: number | undefined;
  private socket: WebSocket | undefined;
  private stopped = true;
  private backoffMs: number;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private ackScheduled = false;
  private acked = 0;
  private use: 'active' | 'idle' | undefined;
  /** When the server was last heard from: a browser cannot see protocol pings, so the receiver pings itself. */
  private heardAt = 0;

  constructor(private readonly options: BrowserReceiverOptions) {
    super();
    this.lastSeq = options.since;
    this.backoffMs = options.minBackoffMs ?? 100;
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.connect();
    return this;
  }

  /** Closes for good. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    this.socket?.close(1000, 'client closing');
    this.socket = undefined;
  }

  /** Drops the connection as a network failure would; the receiver reconnects and resumes. */
  drop(): void {
    this.socket?.close(DROPPED, 'dropped');
  }

  /** Reconnects now instead of after the backoff (the browser says it is `online` again). */
  reconnectNow(): void {
    this.backoffMs = this.options.minBackoffMs ?? 100;
    if (this.stopped || this.socket) return;
    clearTimeout(this.reconnectTimer);
    this.connect();
  }

  /** Acknowledges everything up to `seq` (done automatically unless autoAck is false). */
  ack(seq: number): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: 'ack', seq }));
  }

  /**
   * Whether the user is at this page (visible and focused): the server then holds the user's
   * phone alerts back for a moment. Said again after every reconnect.
   */
  setActive(active: boolean): void {
    const use = active ? 'active' : 'idle';
    if (use === this.use) return;
    this.use = use;
    this.sendUse();
  }

  private sendUse(): void {
    if (this.use && this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: this.use }));
  }

  private connect(): void {
    const url = new URL(this.options.url);
    url.searchParams.set('station', this.options.station);
    if (this.lastSeq !== undefined) url.searchParams.set('since', String(this.lastSeq));
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener('message', (event) => {
      if (this.socket === socket && typeof event.data === 'string') this.receive(event.data);
    });
    socket.addEventListener('close', (event) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      clearInterval(this.pingTimer);
      if (this.stopped) return;
      if (REFUSAL_CODES.has(event.code)) {
        this.stopped = true;
        this.emit('refused', { code: event.code, reason: event.reason });
        return;
      }
      const retryInMs = Math.round(this.backoffMs * (0.5 + Math.random() / 2));
      this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 10_000);
      this.emit('disconnected', { code: event.code, reason: event.reason, retryInMs });
      this.reconnectTimer = setTimeout(() => this.connect(), retryInMs);
    });
  }

  /**
   * Pings at the server's interval; a server silent for 2.5 intervals is gone even when the
   * socket has not noticed yet (a laptop that slept, a network that vanished).
   */
  private watch(intervalMs: number): void {
    clearInterval(this.pingTimer);
    this.heardAt = Date.now();
    const socket = this.socket;
    this.pingTimer = setInterval(() => {
      if (socket !== this.socket || socket?.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.heardAt > intervalMs * 2.5) this.drop();
      else socket.send('{"type":"ping"}');
    }, intervalMs);
  }

  private receive(text: string): void {
    this.heardAt = Date.now();
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
        this.watch(frame.ping);
        this.advance(frame.since);
        this.emit('hello', frame);
        break;
      case 'notification':
      case 'clean':
        // The server sends each sequence once per connection; a frame at or below what was
        // already seen can only come from a resume that overlapped it, and is not news.
        if (this.lastSeq !== undefined && frame.seq <= this.lastSeq) return;
        this.advance(frame.seq);
        if (frame.type === 'clean') this.emit('clean', frame);
        else this.emit('notification', frame);
        if (this.options.autoAck !== false) this.scheduleAck();
        break;
      case 'synced':
        this.emit('synced', frame);
        if (this.options.autoAck !== false) this.scheduleAck();
        break;
      case 'error':
        this.emit('serverError', frame);
        break;
    }
  }

  private advance(seq: number): void {
    if (this.lastSeq === seq) return;
    this.lastSeq = seq;
    this.options.onSeq?.(seq);
  }

  /** One ack per burst of frames: the highest sequence covers everything before it. */
  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setTimeout(() => {
      this.ackScheduled = false;
      if (this.lastSeq !== undefined && this.lastSeq > this.acked) {
        this.acked = this.lastSeq;
        this.ack(this.lastSeq);
      }
    }, 0);
  }
}
