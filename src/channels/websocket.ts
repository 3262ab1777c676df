import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { AppContext } from '../context.ts';
import { checkStation, deviceOf, recordLiveProgress, type LiveProgress } from '../chat/devices.ts';
import type { LiveConnection } from '../model/channel.ts';
import { frameText, type Notification } from '../model/notification.ts';
import { feedHead, readFeed } from '../notify/feed.ts';
import { corkDispatch } from './live/cork.ts';
import { frameBytes } from './live/frame-bytes.ts';

export const WS_PATH = '/ws';

/**
 * Close codes a client sees. The upgrade is always accepted and then closed with one of
 * these, because a browser cannot read the HTTP status of a refused upgrade but does get
 * the close code and reason.
 */
export const CLOSE = {
  shuttingDown: 1001,
  badRequest: 4400,
  unauthenticated: 4401,
  forbidden: 4403,
  tooManyConnections: 4429,
  internalError: 1011,
} as const;

export interface WebSocketOptions {
  /** How often the server pings; a connection that missed one pong is terminated. */
  pingIntervalMs?: number;
  /** Other WebSocket endpoints on the same ports, by path (Web3MQ's /messages). */
  upgrades?: ReadonlyMap<string, UpgradeHandler>;
}

export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

export const DEFAULT_PING_INTERVAL_MS = 30_000;
/** Feed rows read per query while replaying. */
const REPLAY_PAGE = 500;
/** Live frames held while a replay runs; beyond that they are dropped and re-read from the feed. */
const MAX_HELD_FRAMES = 10_000;
/** A frame that arrives ahead of its predecessor waits this long before the gap is read from the feed. */
const GAP_WAIT_MS = 500;
/** Replay pauses while this much is queued on the socket. */
const REPLAY_HIGH_WATER_BYTES = 1024 * 1024;
/** A reader this far behind is cut off; it resumes with `since` when it comes back. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Frames kept from a client that sends before its station has been looked up. */
const MAX_EARLY_FRAMES = 16;
/** Clients only send acks and pings. */
const MAX_CLIENT_FRAME_BYTES = 4096;
const MAX_CONNECTIONS_PER_STATION = 16;
/** A user can log in any number of stations, so the station limit alone does not bound one user's connections. */
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
/** On shutdown, clients get this long to answer the close frame before their sockets are cut. */
const CLOSE_GRACE_MS = 1000;

const AS_TEXT = { binary: false } as const;

class Refusal extends Error {
  constructor(
    readonly code: number,
    reason: string,
  ) {
    super(reason);
  }
}

interface Identity {
  station: string;
  userId: string;
  since: number | undefined;
}

/** Reads who is connecting: the station (header or query), an optional claimed user, and `since`. */
async function identify(ctx: AppContext, request: IncomingMessage, url: URL): Promise<Identity> {
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
  const device = await deviceOf(ctx.store.db, station);
  if (!device) throw new Refusal(CLOSE.unauthenticated, 'unknown station: log in with chatlogin first');
  const userHeader = request.headers['ozeki-user'];
  const claimed = (typeof userHeader === 'string' && userHeader !== '' ? userHeader : undefined) ?? url.searchParams.get('user');
  if (claimed && claimed.toLowerCase() !== device.user_id) {
    throw new Refusal(CLOSE.forbidden, 'this station belongs to another user');
  }
  return { station, userId: device.user_id, since };
}

/**
 * One WebSocket of one device. It starts out replaying: live frames the hub hands over are
 * held while the feed after `since` is read and sent; then the held frames newer than the
 * last one sent follow. Frames are sent strictly in sequence order; one that overtakes its
 * predecessor waits briefly and, if the predecessor does not come, the gap is read from
 * the feed, so a device never misses a sequence number and never gets one twice.
 */
class WsConnection implements LiveConnection {
  readonly channel = 'ws' as const;
  /** Highest sequence sent on this connection. */
  lastSent = 0;
  ackedSeq = 0;
  recordedAck = 0;
  recordedDelivered = 0;
  /** Which of the DELIVERED_ONLY_EVERY batches writes this connection's delivery progress alone. */
  progressTurn = 0;
  framesSent = 0;
  alive = true;
  private replaying = true;
  private closed = false;
  private overflowed = false;
  private held = new Map<number, string>();
  private gapTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: AppContext,
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

  /** The socket is corked until the current dispatch is over (cork.ts). */
  corked = false;

  private send(seq: number, frame: string): void {
    corkDispatch(this);
    this.socket.send(frameBytes(frame), AS_TEXT);
    this.lastSent = seq;
    this.framesSent++;
    if (this.socket.bufferedAmount > MAX_QUEUED_BYTES) {
      this.ctx.log.warn({ station: this.station }, 'WebSocket reader too slow; disconnected');
      this.socket.terminate();
    }
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
        const page = await readFeed(this.ctx.store.db, this.userId, this.lastSent, REPLAY_PAGE);
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

  /** `{"type":"ack","seq":N}` acknowledges everything up to N. */
  receive(data: RawData): void {
    this.alive = true;
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
    } else if (type === 'ack') {
      const seq = (frame as { seq?: unknown }).seq;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || seq > this.lastSent) {
        this.sendControl({ type: 'error', message: `ack seq must be a whole number from 0 to ${this.lastSent}, the last sent` });
        return;
      }
      if (seq > this.ackedSeq) this.ackedSeq = seq;
    } else {
      this.sendControl({ type: 'error', message: 'unknown frame type; a client sends {"type":"ack","seq":N} or {"type":"ping"}' });
    }
  }

  progress(now: number, includeDeliveredOnly = true): LiveProgress | undefined {
    const newAck = this.ackedSeq > this.recordedAck;
    if (!newAck && !(includeDeliveredOnly && this.lastSent > this.recordedDelivered)) return undefined;
    this.recordedAck = this.ackedSeq;
    this.recordedDelivered = this.lastSent;
    return { station: this.station, ackedSeq: this.ackedSeq, deliveredSeq: this.lastSent, seenAt: now };
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
    this.ctx.log.error({ err: error, station: this.station }, 'WebSocket replay failed');
    if (!this.closed) this.socket.close(CLOSE.internalError, 'internal error; reconnect with since');
  }
}

/** Live push over WebSocket at /ws on the HTTP and HTTPS servers. */
export function attachWebSocket(
  ctx: AppContext,
  servers: Array<HttpServer | HttpsServer>,
  options: WebSocketOptions = {},
) {
  const pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES, perMessageDeflate: false });
  const connections = new Set<WsConnection>();
  const perStation = new Map<string, number>();
  const finished: LiveProgress[] = [];
  let flushing: Promise<void> | undefined;
  /** Connections opened so far: each takes the next turn for writing its delivery progress. */
  let opened = 0;
  let closing = false;

  async function open(socket: WebSocket, request: IncomingMessage, url: URL): Promise<void> {
    socket.on('error', (error) => ctx.log.debug({ err: error }, 'WebSocket error'));
    // A client may send before the station has been looked up; keep those frames until then.
    let connection: WsConnection | undefined;
    const early: RawData[] = [];
    socket.on('message', (data) => {
      if (connection) connection.receive(data);
      else if (early.length < MAX_EARLY_FRAMES) early.push(data);
    });
    let identity: Identity;
    try {
      identity = await identify(ctx, request, url);
    } catch (error) {
      if (error instanceof Refusal) socket.close(error.code, error.message);
      else {
        ctx.log.error({ err: error }, 'WebSocket handshake failed');
        socket.close(CLOSE.internalError, 'internal error');
      }
      return;
    }
    if (socket.readyState !== socket.OPEN) return;
    if (closing) {
      socket.close(CLOSE.shuttingDown, 'server shutting down');
      return;
    }
    const count = perStation.get(identity.station) ?? 0;
    if (count >= MAX_CONNECTIONS_PER_STATION) {
      socket.close(CLOSE.tooManyConnections, `at most ${MAX_CONNECTIONS_PER_STATION} connections per station`);
      return;
    }
    if ((ctx.hub.connectionsOf(identity.userId)?.size ?? 0) >= MAX_CONNECTIONS_PER_USER) {
      socket.close(CLOSE.tooManyConnections, `at most ${MAX_CONNECTIONS_PER_USER} live connections per user`);
      return;
    }
    perStation.set(identity.station, count + 1);

    const live = new WsConnection(ctx, socket, identity.userId, identity.station);
    live.progressTurn = opened++ % DELIVERED_ONLY_EVERY;
    connections.add(live);
    // Registered before the feed is read, so nothing committed from now on can slip past.
    ctx.hub.add(live);
    ctx.metrics.liveConnections.inc({ channel: 'ws' });
    finished.push({ station: live.station, ackedSeq: 0, deliveredSeq: 0, seenAt: Date.now() });
    socket.on('pong', () => (live.alive = true));
    socket.on('close', () => {
      live.markClosed();
      ctx.hub.remove(live);
      connections.delete(live);
      ctx.metrics.liveConnections.dec({ channel: 'ws' });
      const left = (perStation.get(identity.station) ?? 1) - 1;
      if (left > 0) perStation.set(identity.station, left);
      else perStation.delete(identity.station);
      // Always written: the device was seen until now, even if nothing new was sent.
      const now = Date.now();
      finished.push(live.progress(now) ?? { station: live.station, ackedSeq: 0, deliveredSeq: 0, seenAt: now });
    });

    try {
      const head = await feedHead(ctx.store.db, identity.userId);
      if (identity.since !== undefined && identity.since > head.lastSeq) {
        socket.close(CLOSE.badRequest, `since ${identity.since} is beyond the last sequence ${head.lastSeq}`);
        return;
      }
      const since = identity.since ?? head.lastSeq;
      live.sendControl({
        type: 'hello',
        userid: identity.userId,
        station: identity.station,
        since,
        lastseq: head.lastSeq,
        badge: head.badge,
        ping: pingIntervalMs,
      });
      // Acks are checked against what was sent: from here on that includes everything up to `since`.
      live.lastSent = since;
      connection = live;
      for (const data of early.splice(0)) live.receive(data);
      await live.resume(since);
    } catch (error) {
      live.fail(error);
    }
  }

  function onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'http://herald.invalid');
    const other = options.upgrades?.get(url.pathname);
    if (other) {
      other(request, socket, head);
      return;
    }
    if (url.pathname !== WS_PATH) {
      socket.on('error', () => {});
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nthe WebSocket endpoint is /ws\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      open(ws, request, url).catch((error) => ctx.log.error({ err: error }, 'WebSocket open failed'));
    });
  }
  for (const server of servers) server.on('upgrade', onUpgrade);

  // A connection that did not answer the previous ping is gone (a dead peer never closes).
  const pinger = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        connection.socket.terminate();
        continue;
      }
      connection.alive = false;
      connection.socket.ping();
    }
  }, pingIntervalMs);
  pinger.unref();

  let flushCount = 0;
  function flushProgress(everything = false): Promise<void> {
    if (flushing) return flushing;
    const now = Date.now();
    const turn = ++flushCount % DELIVERED_ONLY_EVERY;
    const batch = finished.splice(0);
    let frames = 0;
    for (const connection of connections) {
      frames += connection.framesSent;
      connection.framesSent = 0;
      const progress = connection.progress(now, everything || connection.progressTurn === turn);
      if (progress) batch.push(progress);
    }
    if (frames > 0) ctx.metrics.framesSent.inc({ channel: 'ws' }, frames);
    if (batch.length === 0) return Promise.resolve();
    flushing = recordLiveProgress(ctx.store.db, batch)
      .catch((error) => ctx.log.error({ err: error }, 'recording WebSocket acknowledgements failed'))
      .finally(() => (flushing = undefined));
    return flushing;
  }
  const flusher = setInterval(() => void flushProgress(), PROGRESS_FLUSH_MS);
  flusher.unref();

  return {
    async close(): Promise<void> {
      closing = true;
      for (const server of servers) server.off('upgrade', onUpgrade);
      clearInterval(pinger);
      clearInterval(flusher);
      const open = [...connections];
      const gone = open.map((c) => new Promise<void>((resolve) => c.socket.once('close', () => resolve())));
      for (const connection of open) connection.socket.close(CLOSE.shuttingDown, 'server shutting down');
      const grace = setTimeout(() => open.forEach((c) => c.socket.terminate()), CLOSE_GRACE_MS);
      await Promise.all(gone);
      clearTimeout(grace);
      await flushing;
      await flushProgress(true);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
