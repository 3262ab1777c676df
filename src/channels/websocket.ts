import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { checkStation, type LiveProgress } from '../chat/devices.ts';
import type { Devices } from '../chat/services.ts';
import type { Metrics } from '../metrics.ts';
import { frameText, type Notification } from '../model/notification.ts';
import type { FeedReader } from '../notify/feed.ts';
import { corkDispatch } from './live/cork.ts';
import { frameBytes } from './live/frame-bytes.ts';
import { writeWhole } from './live/ws-frame.ts';
import { CLOSE, Refusal } from './live/refusal.ts';
import { cutOffIfBehind, type Handshake, type LiveEndpoint, type LiveSocketConnection } from './live/server.ts';

export const WS_PATH = '/ws';

/** Feed rows read per query while replaying. */
const REPLAY_PAGE = 500;
/** Live frames held while a replay runs; beyond that they are dropped and re-read from the feed. */
const MAX_HELD_FRAMES = 10_000;
/** A frame that arrives ahead of its predecessor waits this long before the gap is read from the feed. */
const GAP_WAIT_MS = 500;
/** Replay pauses while this much is queued on the socket. */
const REPLAY_HIGH_WATER_BYTES = 1024 * 1024;
const MAX_CONNECTIONS_PER_STATION = 16;
/** Counted over every channel: a user's UDP endpoints and Web3MQ sockets count too. */
const MAX_CONNECTIONS_PER_USER = 128;
/** Acknowledgements are written in batches this often… */
const PROGRESS_FLUSH_MS = 200;
/**
 * …and delivery progress alone only every this many batches: during a fan-out it changes for
 * every device all the time. Each batch takes its turn's share of the connections, so the
 * write is spread evenly: all 1,000 devices of the latency bench at once every 2 s was ~10 ms
 * of database work in one go, and the messages that arrived meanwhile waited behind it.
 */
const DELIVERED_ONLY_EVERY = 10;
/**
 * A device that stays in use has its activity written again at most this often (the first
 * activity after idle at the next flush): the push hold's window is at least 10 s, and a
 * write per frame would cost a device row update for every ack.
 */
const ACTIVE_REFRESH_MS = 5000;

/** Who is connecting: the station, its user, and where to resume from. */
interface WsIdentity {
  station: string;
  userId: string;
  since: number | undefined;
}

/** What the WebSocket channel is built from. */
export interface WebSocketChannelParts {
  feed: FeedReader;
  devices: Pick<Devices, 'deviceOf' | 'recordLiveProgress'>;
  metrics: Pick<Metrics, 'framesSent'>;
  log: Logger;
  /** The live server's ping interval, told to clients in the hello. */
  pingIntervalMs: number;
}

/**
 * One WebSocket of one device. It starts out replaying: live frames the hub hands over are
 * held while the feed after `since` is read and sent; then the held frames newer than the
 * last one sent follow. Frames are sent strictly in sequence order; one that overtakes its
 * predecessor waits briefly and, if the predecessor does not come, the gap is read from
 * the feed, so a device never misses a sequence number and never gets one twice.
 */
class WsConnection implements LiveSocketConnection<RawData> {
  readonly channel = 'ws' as const;
  /** Highest sequence sent on this connection. */
  lastSent = 0;
  /** Frames go out strictly in order, so everything up to the last one sent was sent. */
  get deliveredSeq(): number {
    return this.lastSent;
  }
  ackedSeq = 0;
  recordedAck = 0;
  recordedDelivered = 0;
  /** Which of the DELIVERED_ONLY_EVERY batches writes this connection's delivery progress alone. */
  progressTurn = 0;
  /** Said `{"type":"idle"}`: its acks and frames no longer count as use until it says `active`. */
  idle = false;
  /** When the device was last in use on this connection (0: not since it connected or went idle). */
  activeAt = 0;
  recordedActiveAt = 0;
  /** Idle was said and not yet written. */
  idleToRecord = false;
  /** Highest sequence acknowledged while in use. */
  seenSeq = 0;
  recordedSeen = 0;
  framesSent = 0;
  /** The socket is corked until the current dispatch is over (cork.ts). */
  corked = false;
  private replaying = true;
  private closed = false;
  private overflowed = false;
  private held = new Map<number, string>();
  private gapTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly endpoint: WebSocketChannel,
    readonly socket: WebSocket,
    readonly userId: string,
    readonly station: string,
  ) {}

  deliver(notification: Notification, frame: string): void {
    const seq = notification.seq;
    if (!this.replaying && seq === this.lastSent + 1 && this.held.size === 0) {
      this.send(seq, frame);
      return;
    }
    if (this.closed || seq <= this.lastSent) return;
    if (this.held.size >= MAX_HELD_FRAMES) {
      this.overflowed = true;
      return;
    }
    this.held.set(seq, frame);
    if (!this.replaying) this.sendHeldInOrder();
  }

  private send(seq: number, frame: string): void {
    corkDispatch(this);
    writeWhole(this.socket, frameBytes(frame));
    this.lastSent = seq;
    this.framesSent++;
    if (cutOffIfBehind(this.socket)) this.endpoint.log.warn({ station: this.station }, 'WebSocket reader too slow; disconnected');
  }

  sendControl(frame: Record<string, unknown>): void {
    if (!this.closed) this.socket.send(JSON.stringify(frame));
  }

  /** Sends the feed after `since`, then whatever was held meanwhile, then goes live. */
  async resume(since: number): Promise<void> {
    this.lastSent = since;
    await this.replay();
    this.sendControl({ type: 'synced', seq: this.lastSent });
  }

  private async replay(): Promise<void> {
    this.replaying = true;
    do {
      this.overflowed = false;
      this.held.clear();
      for (;;) {
        const page = await this.endpoint.feed.read(this.userId, this.lastSent, REPLAY_PAGE);
        if (this.closed) return;
        for (const n of page) if (n.seq > this.lastSent) this.send(n.seq, frameText(n));
        if (page.length < REPLAY_PAGE) break;
        await this.drained();
      }
      // Frames dropped on overflow are in the feed: read on from where the replay stopped.
    } while (this.overflowed);
    this.replaying = false;
    this.sendHeldInOrder();
  }

  private sendHeldInOrder(): void {
    for (const seq of this.held.keys()) if (seq <= this.lastSent) this.held.delete(seq);
    let next = this.held.get(this.lastSent + 1);
    while (next !== undefined && !this.closed) {
      this.held.delete(this.lastSent + 1);
      this.send(this.lastSent + 1, next);
      next = this.held.get(this.lastSent + 1);
    }
    if (this.held.size > 0 && !this.gapTimer) {
      this.gapTimer = setTimeout(() => {
        this.gapTimer = undefined;
        if (this.held.size > 0 && !this.replaying && !this.closed) {
          this.replay().catch((error) => this.fail(error));
        }
      }, GAP_WAIT_MS);
    }
  }

  private drained(): Promise<void> {
    if (this.socket.bufferedAmount < REPLAY_HIGH_WATER_BYTES) return Promise.resolve();
    // A ping's write callback runs once everything queued before it has reached the kernel.
    return new Promise((resolve) => this.socket.ping(undefined, undefined, () => resolve()));
  }

  /**
   * `{"type":"ack","seq":N}` acknowledges everything up to N; `{"type":"active"}` and
   * `{"type":"idle"}` say whether the user is at the device (the push hold). Any good frame
   * of a device that is not idle counts as use.
   */
  receive(data: RawData): void {
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      this.sendControl({ type: 'error', message: 'a frame must be a JSON object' });
      return;
    }
    const type = (frame as { type?: unknown } | null)?.type;
    if (type === 'ping') {
      this.sendControl({ type: 'pong' });
      this.inUse();
    } else if (type === 'ack') {
      const seq = (frame as { seq?: unknown }).seq;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || seq > this.lastSent) {
        this.sendControl({ type: 'error', message: `ack seq must be a whole number from 0 to ${this.lastSent}, the last sent` });
        return;
      }
      if (seq > this.ackedSeq) this.ackedSeq = seq;
      if (this.inUse() && seq > this.seenSeq) this.seenSeq = seq;
    } else if (type === 'active') {
      this.idle = false;
      this.idleToRecord = false;
      this.inUse();
    } else if (type === 'idle') {
      this.idle = true;
      this.activeAt = 0;
      this.recordedActiveAt = 0;
      this.idleToRecord = true;
    } else {
      this.sendControl({
        type: 'error',
        message: 'unknown frame type; a client sends {"type":"ack","seq":N}, {"type":"ping"}, {"type":"active"} or {"type":"idle"}',
      });
    }
  }

  /** Notes that the device is in use now, unless it said it is idle; says whether it is. */
  private inUse(): boolean {
    if (this.idle) return false;
    this.activeAt = Date.now();
    return true;
  }

  progress(now: number, includeDeliveredOnly = true): LiveProgress | undefined {
    const newAck = this.ackedSeq > this.recordedAck;
    const newSeen = this.seenSeq > this.recordedSeen;
    const activity = this.activeAt > 0 && (this.recordedActiveAt === 0 || this.activeAt - this.recordedActiveAt >= ACTIVE_REFRESH_MS);
    if (!newAck && !newSeen && !activity && !this.idleToRecord && !(includeDeliveredOnly && this.lastSent > this.recordedDelivered)) {
      return undefined;
    }
    this.recordedAck = this.ackedSeq;
    this.recordedDelivered = this.lastSent;
    this.recordedSeen = this.seenSeq;
    const progress: LiveProgress = { station: this.station, ackedSeq: this.ackedSeq, deliveredSeq: this.lastSent, seenAt: now };
    if (newSeen) progress.seenSeq = this.seenSeq;
    if (activity) {
      progress.activeAt = this.activeAt;
      this.recordedActiveAt = this.activeAt;
    } else if (this.idleToRecord) {
      progress.activeAt = null;
    }
    this.idleToRecord = false;
    return progress;
  }

  close(reason: string): void {
    if (!this.closed) this.socket.close(CLOSE.unauthenticated, reason);
  }

  markClosed(): void {
    this.closed = true;
    this.held.clear();
    clearTimeout(this.gapTimer);
  }

  fail(error: unknown): void {
    this.endpoint.log.error({ err: error, station: this.station }, 'WebSocket replay failed');
    if (!this.closed) this.socket.close(CLOSE.internalError, 'internal error; reconnect with since');
  }
}

/**
 * Live push over WebSocket at /ws, an endpoint of the live server on the HTTP and HTTPS
 * ports: a device names its station, gets a hello, the feed after `since`, then every
 * notification of its user as it is committed, and acknowledges by sequence number.
 */
export class WebSocketChannel implements LiveEndpoint<RawData, WsIdentity, WsConnection> {
  readonly path = WS_PATH;
  readonly name = 'WebSocket';
  readonly limits = { perStation: MAX_CONNECTIONS_PER_STATION, perUserAllChannels: MAX_CONNECTIONS_PER_USER };
  readonly feed: FeedReader;
  readonly log: Logger;
  private readonly devices: WebSocketChannelParts['devices'];
  private readonly metrics: WebSocketChannelParts['metrics'];
  private readonly pingIntervalMs: number;
  private readonly connections = new Set<WsConnection>();
  /** Progress of connections that have ended (and of those just opened), written at the next flush. */
  private readonly finished: LiveProgress[] = [];
  private flushing: Promise<void> | undefined;
  /** Connections opened so far: each takes the next turn for writing its delivery progress. */
  private opened = 0;
  private flushCount = 0;
  private readonly flusher: NodeJS.Timeout;

  constructor(parts: WebSocketChannelParts) {
    this.feed = parts.feed;
    this.devices = parts.devices;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.pingIntervalMs = parts.pingIntervalMs;
    this.flusher = setInterval(() => void this.flushProgress(), PROGRESS_FLUSH_MS);
    this.flusher.unref();
  }

  /** Client frames are JSON text, parsed by the connection (a bad one is answered, not refused). */
  decode(data: RawData): RawData {
    return data;
  }

  /** Reads who is connecting: the station (header or query), an optional claimed user, and `since`. */
  async authenticate(request: IncomingMessage, url: URL): Promise<WsIdentity> {
    const header = request.headers['ozeki-station'];
    const raw = (typeof header === 'string' && header !== '' ? header : undefined) ?? url.searchParams.get('station') ?? '';
    if (raw === '') {
      throw new Refusal(CLOSE.unauthenticated, 'the station is missing: send the Ozeki-Station header or ?station=');
    }
    let station: string;
    try {
      station = checkStation(raw);
    } catch {
      throw new Refusal(CLOSE.badRequest, 'the station must be 32 hexadecimal characters');
    }
    const sinceText = url.searchParams.get('since');
    let since: number | undefined;
    if (sinceText !== null) {
      if (!/^\d{1,15}$/.test(sinceText)) throw new Refusal(CLOSE.badRequest, 'since must be a whole number, 0 or more');
      since = Number(sinceText);
    }
    const device = await this.devices.deviceOf(station);
    if (!device) throw new Refusal(CLOSE.unauthenticated, 'unknown station: log in with chatlogin first');
    const userHeader = request.headers['ozeki-user'];
    const claimed = (typeof userHeader === 'string' && userHeader !== '' ? userHeader : undefined) ?? url.searchParams.get('user');
    if (claimed && claimed.toLowerCase() !== device.user_id) {
      throw new Refusal(CLOSE.forbidden, 'this station belongs to another user');
    }
    return { station, userId: device.user_id, since };
  }

  open(socket: WebSocket, who: WsIdentity): WsConnection {
    const connection = new WsConnection(this, socket, who.userId, who.station);
    connection.progressTurn = this.opened++ % DELIVERED_ONLY_EVERY;
    this.connections.add(connection);
    // The device was seen now, even if nothing is ever sent to it.
    this.finished.push({ station: connection.station, ackedSeq: 0, deliveredSeq: 0, seenAt: Date.now() });
    return connection;
  }

  /** The hello, then the feed after `since` and what was held meanwhile, then live. */
  async start(connection: WsConnection, who: WsIdentity, handshake: Handshake<RawData>): Promise<void> {
    try {
      const head = await this.feed.head(who.userId);
      if (who.since !== undefined && who.since > head.lastSeq) {
        connection.socket.close(CLOSE.badRequest, `since ${who.since} is beyond the last sequence ${head.lastSeq}`);
        return;
      }
      const since = who.since ?? head.lastSeq;
      connection.sendControl({
        type: 'hello',
        userid: who.userId,
        station: who.station,
        since,
        lastseq: head.lastSeq,
        badge: head.badge,
        ping: this.pingIntervalMs,
      });
      // Acks are checked against what was sent: from here on that includes everything up to `since`.
      connection.lastSent = since;
      handshake.listen();
      await connection.resume(since);
    } catch (error) {
      connection.fail(error);
    }
  }

  closed(connection: WsConnection): void {
    connection.markClosed();
    this.connections.delete(connection);
    // Always written: the device was seen until now, even if nothing new was sent.
    const now = Date.now();
    const last = connection.progress(now) ?? { station: connection.station, ackedSeq: 0, deliveredSeq: 0, seenAt: now };
    // A device without a live connection is not in use. (Another connection of the same
    // device that is in use says so again at its next activity.)
    last.activeAt = null;
    this.finished.push(last);
  }

  /** Writes acknowledgements, and in turn delivery progress; `everything` writes all of it at once. */
  flushProgress(everything = false): Promise<void> {
    if (this.flushing) return this.flushing;
    const now = Date.now();
    const turn = ++this.flushCount % DELIVERED_ONLY_EVERY;
    const batch = this.finished.splice(0);
    let frames = 0;
    for (const connection of this.connections) {
      frames += connection.framesSent;
      connection.framesSent = 0;
      const progress = connection.progress(now, everything || connection.progressTurn === turn);
      if (progress) batch.push(progress);
    }
    if (frames > 0) this.metrics.framesSent.inc({ channel: 'ws' }, frames);
    if (batch.length === 0) return Promise.resolve();
    this.flushing = this.devices
      .recordLiveProgress(batch)
      .catch((error) => this.log.error({ err: error }, 'recording WebSocket acknowledgements failed'))
      .finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** On shutdown, once every socket has closed: the last progress is written. */
  async stop(): Promise<void> {
    clearInterval(this.flusher);
    await this.flushing;
    await this.flushProgress(true);
  }
}
