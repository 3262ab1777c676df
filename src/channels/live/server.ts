import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Metrics } from '../../metrics.ts';
import type { LiveConnection } from '../../model/channel.ts';
import type { Hub } from '../../notify/hub.ts';
import { refusal as rateLimited, type RateLimiter } from '../../limits/limiter.ts';
import { EndpointTally, type Limits } from './limits.ts';
import { CLOSE, Refusal } from './refusal.ts';

export const DEFAULT_PING_INTERVAL_MS = 30_000;
/** Clients only send acknowledgements, pings and (Web3MQ) a ConnectReq. */
const MAX_CLIENT_FRAME_BYTES = 4096;
/** Frames kept from a client that sends while its socket is being authenticated. */
const MAX_EARLY_FRAMES = 16;
/** On shutdown, clients get this long to answer the close frame before their sockets are cut. */
const CLOSE_GRACE_MS = 1000;
/** A reader this far behind is cut off; it comes back for what it missed (`since`, the history). */
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;

/** Who an endpoint found a socket to be; limits count by these. */
export interface Identity {
  readonly userId: string;
  readonly station: string;
}

/** An accepted socket, as the hub and the server drive it. */
export interface LiveSocketConnection<Frame> extends LiveConnection {
  readonly socket: WebSocket;
  /** A frame from the client, as the endpoint decoded it. */
  receive(frame: Frame): void;
  /** Closes with 4401 and the reason (the device was removed, its key expired). */
  close(reason: string): void;
  /** Why the connection must end although it answers pings (its login key expired), checked at each ping. */
  expired?(now: number): string | undefined;
}

/** A socket while its endpoint authenticates and greets it. */
export interface Handshake<Frame> {
  readonly socket: WebSocket;
  /** The client's first frame (Web3MQ authenticates with it); later frames are kept for `listen`. */
  firstFrame(): Promise<Frame>;
  /** From now on the connection receives the client's frames, starting with those kept meanwhile. */
  listen(): void;
}

/**
 * One path on the live-socket server and the protocol spoken there. The server owns the
 * upgrade, the limits, the hub registration, the heartbeat and the shutdown; the endpoint
 * only says who is connecting, greets, and reads and writes its own frames.
 */
export interface LiveEndpoint<Frame, Who extends Identity, Connection extends LiveSocketConnection<Frame>> {
  readonly path: string;
  /** Names the endpoint in logs. */
  readonly name: string;
  readonly limits: Limits;
  /** When set, a socket not authenticated in time is closed with 4401 and this reason. */
  readonly handshakeTimeout?: { ms: number; reason: string };
  /** A client frame as the protocol reads it, or the refusal that closes the socket. */
  decode(data: RawData, isBinary: boolean): Frame | Refusal;
  /** Who is connecting; throws a Refusal to close the socket with its code and reason. */
  authenticate(request: IncomingMessage, url: URL, handshake: Handshake<Frame>): Promise<Who>;
  /**
   * The connection of an authenticated socket that is within the limits. What `open` sends
   * goes out before anything the hub delivers (it is registered right after).
   */
  open(socket: WebSocket, who: Who): Connection;
  /** Greets a registered connection and calls `handshake.listen()`; without it the connection listens at once. */
  start?(connection: Connection, who: Who, handshake: Handshake<Frame>): Promise<void>;
  /** The socket of an accepted connection has closed. */
  closed(connection: Connection): void;
  /** Runs on shutdown once every socket has closed. */
  stop?(): Promise<void>;
}

type AnyEndpoint = LiveEndpoint<unknown, Identity, LiveSocketConnection<unknown>>;

interface Registered {
  endpoint: AnyEndpoint;
  tally: EndpointTally;
}

export interface LiveServerParts {
  hub: Pick<Hub, 'add' | 'remove' | 'connectionsOf'>;
  metrics: Pick<Metrics, 'liveConnections'>;
  log: Logger;
  /** Handshakes per source address and per station; one over a limit is closed with 4429. */
  limits?: Pick<RateLimiter, 'take'>;
  /** How often sockets are pinged; one that missed the previous pong is terminated. */
  pingIntervalMs?: number;
}

/** The endpoint a socket was routed to, the connection once accepted, and what its handshake keeps. */
class LiveSocket implements Handshake<unknown> {
  /** Cleared at each ping, set again by a pong or any frame. */
  alive = true;
  connection: LiveSocketConnection<unknown> | undefined = undefined;
  /** Frames kept until the connection listens; undefined from then on. */
  private early: unknown[] | undefined = [];
  private waiting: { resolve(frame: unknown): void; reject(error: Refusal): void } | undefined = undefined;
  deadline: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly socket: WebSocket,
    readonly registered: Registered,
  ) {}

  receive(data: RawData, isBinary: boolean): void {
    this.alive = true;
    const frame = this.registered.endpoint.decode(data, isBinary);
    if (frame instanceof Refusal) {
      this.refuse(frame.code, frame.message);
    } else if (this.early === undefined) {
      this.connection!.receive(frame);
    } else if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = undefined;
      resolve(frame);
    } else if (this.early.length < MAX_EARLY_FRAMES) {
      this.early.push(frame);
    }
  }

  firstFrame(): Promise<unknown> {
    if (this.early && this.early.length > 0) return Promise.resolve(this.early.shift());
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  listen(): void {
    const early = this.early;
    if (!early || !this.connection) return;
    this.early = undefined;
    for (const frame of early) this.connection.receive(frame);
  }

  refuse(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(code, reason);
  }

  /** The socket closed: a handshake waiting for a frame is told so. */
  ended(): void {
    clearTimeout(this.deadline);
    this.waiting?.reject(SOCKET_CLOSED);
    this.waiting = undefined;
  }
}

/** Ends a handshake whose socket is gone; never sent, as there is no socket to send it on. */
const SOCKET_CLOSED = new Refusal(CLOSE.shuttingDown, 'the socket closed');

function refuseLate(live: LiveSocket, reason: string): void {
  live.refuse(CLOSE.unauthenticated, reason);
}

/**
 * The live sockets of the HTTP and HTTPS ports: it takes their WebSocket upgrades, routes
 * them by path to the registered endpoints (/ws, Web3MQ's /messages), enforces the per-user
 * and per-station limits, registers accepted connections with the hub, pings them, and
 * closes them gracefully on shutdown. Any other path is answered 404.
 */
export class LiveServer {
  readonly pingIntervalMs: number;
  private readonly hub: LiveServerParts['hub'];
  private readonly metrics: LiveServerParts['metrics'];
  private readonly log: Logger;
  private readonly limits: LiveServerParts['limits'];
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_CLIENT_FRAME_BYTES,
    perMessageDeflate: false,
    // The server keeps its own map of sockets.
    clientTracking: false,
  });
  private readonly endpoints = new Map<string, Registered>();
  /** Every open socket, from its upgrade on. */
  private readonly sockets = new Map<WebSocket, LiveSocket>();
  private readonly pinger: NodeJS.Timeout;
  private closing = false;
  /** The answer to an upgrade on a path no endpoint serves; it names the first endpoint registered. */
  private notFound = '';

  // Socket listeners shared by every socket (a socket is `this` in them), so a connection costs no closures.
  private readonly onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  private readonly onMessage: (this: WebSocket, data: RawData, isBinary: boolean) => void;
  private readonly onPong: (this: WebSocket) => void;
  private readonly onClose: (this: WebSocket) => void;
  private readonly onError: (this: WebSocket, error: Error) => void;

  constructor(
    private readonly servers: Array<HttpServer | HttpsServer>,
    parts: LiveServerParts,
  ) {
    this.hub = parts.hub;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.limits = parts.limits;
    this.pingIntervalMs = parts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    const ended = (live: LiveSocket) => this.ended(live);
    const sockets = this.sockets;
    const log = this.log;
    this.onUpgrade = (request, socket, head) => this.upgrade(request, socket, head);
    this.onMessage = function (data, isBinary) {
      sockets.get(this)?.receive(data, isBinary);
    };
    this.onPong = function () {
      const live = sockets.get(this);
      if (live) live.alive = true;
    };
    this.onClose = function () {
      const live = sockets.get(this);
      if (live) ended(live);
    };
    this.onError = function (error) {
      log.debug({ err: error }, 'live socket error');
    };
    for (const httpServer of servers) httpServer.on('upgrade', this.onUpgrade);
    this.pinger = setInterval(() => this.heartbeat(), this.pingIntervalMs);
    this.pinger.unref();
  }

  register<Frame, Who extends Identity, Connection extends LiveSocketConnection<Frame>>(
    endpoint: LiveEndpoint<Frame, Who, Connection>,
  ): void {
    if (this.endpoints.has(endpoint.path)) throw new Error(`${endpoint.path} is already served`);
    const tally = new EndpointTally(endpoint.limits, (userId) => this.hub.connectionsOf(userId)?.size ?? 0);
    this.endpoints.set(endpoint.path, { endpoint: endpoint as unknown as AnyEndpoint, tally });
    if (this.notFound === '') {
      this.notFound = `HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nthe WebSocket endpoint is ${endpoint.path}\n`;
    }
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'http://herald.invalid');
    const registered = this.endpoints.get(url.pathname);
    if (!registered) {
      socket.on('error', () => {});
      socket.end(this.notFound);
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      this.handshake(new LiveSocket(ws, registered), request, url).catch((error) =>
        this.log.error({ err: error }, `${registered.endpoint.name} open failed`),
      );
    });
  }

  private async handshake(live: LiveSocket, request: IncomingMessage, url: URL): Promise<void> {
    const { socket, registered } = live;
    const { endpoint, tally } = registered;
    this.sockets.set(socket, live);
    socket.on('error', this.onError);
    socket.on('message', this.onMessage);
    socket.on('pong', this.onPong);
    socket.on('close', this.onClose);
    const timeout = endpoint.handshakeTimeout;
    if (timeout) live.deadline = setTimeout(refuseLate, timeout.ms, live, timeout.reason).unref();
    // Before the endpoint's work (a database look-up, a signature check) is spent on it.
    if (this.overLimit(live, 'live', request.socket.remoteAddress ?? '')) return;

    let who: Identity;
    try {
      who = await endpoint.authenticate(request, url, live);
    } catch (error) {
      if (error instanceof Refusal) live.refuse(error.code, error.message);
      else {
        this.log.error({ err: error }, `${endpoint.name} handshake failed`);
        live.refuse(CLOSE.internalError, 'internal error');
      }
      return;
    } finally {
      clearTimeout(live.deadline);
    }
    if (socket.readyState !== socket.OPEN) return;
    if (this.closing) {
      live.refuse(CLOSE.shuttingDown, 'server shutting down');
      return;
    }
    if (this.overLimit(live, 'live_station', who.station)) return;
    const refusal = tally.refusal(who.userId, who.station);
    if (refusal) {
      live.refuse(refusal.code, refusal.message);
      return;
    }

    const connection = endpoint.open(socket, who);
    live.connection = connection;
    tally.add(connection.userId, connection.station);
    // Registered before the endpoint greets, so nothing committed from now on can slip past.
    this.hub.add(connection);
    this.metrics.liveConnections.inc({ channel: connection.channel });
    if (endpoint.start) await endpoint.start(connection, who, live);
    else live.listen();
  }

  /** Closes the socket with 4429 when it is over the handshake limit of `kind`; says whether it did. */
  private overLimit(live: LiveSocket, kind: 'live' | 'live_station', key: string): boolean {
    const wait = this.limits?.take(kind, key) ?? 0;
    if (wait === 0) return false;
    clearTimeout(live.deadline);
    live.refuse(CLOSE.tooManyConnections, rateLimited(kind, wait).message);
    return true;
  }

  private ended(live: LiveSocket): void {
    this.sockets.delete(live.socket);
    live.ended();
    const connection = live.connection;
    if (!connection) return;
    const { endpoint, tally } = live.registered;
    this.hub.remove(connection);
    this.metrics.liveConnections.dec({ channel: connection.channel });
    tally.remove(connection.userId, connection.station);
    endpoint.closed(connection);
  }

  /** A connection that did not answer the previous ping is gone (a dead peer never closes). */
  private heartbeat(): void {
    const now = Date.now();
    for (const live of this.sockets.values()) {
      const connection = live.connection;
      if (!connection) continue;
      const expired = connection.expired?.(now);
      if (expired !== undefined) connection.close(expired);
      else if (!live.alive) live.socket.terminate();
      else {
        live.alive = false;
        live.socket.ping();
      }
    }
  }

  /** Stops taking upgrades, closes every socket with 1001 (cut after a grace), then stops the endpoints. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const server of this.servers) server.off('upgrade', this.onUpgrade);
    clearInterval(this.pinger);
    const open = [...this.sockets.keys()];
    const gone = open.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    for (const socket of open) socket.close(CLOSE.shuttingDown, 'server shutting down');
    const grace = setTimeout(() => open.forEach((socket) => socket.terminate()), CLOSE_GRACE_MS);
    await Promise.all(gone);
    clearTimeout(grace);
    for (const { endpoint } of this.endpoints.values()) await endpoint.stop?.();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** Cuts off a reader that fell more than MAX_QUEUED_BYTES behind (no close frame: 1006 at the client); says whether it did. */
export function cutOffIfBehind(socket: WebSocket): boolean {
  if (socket.bufferedAmount <= MAX_QUEUED_BYTES) return false;
  socket.terminate();
  return true;
}
