import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { AppContext } from '../../context.ts';
import type { LiveConnection } from '../../model/channel.ts';
import type { Notification } from '../../model/notification.ts';
import { CLOSE, DEFAULT_PING_INTERVAL_MS } from '../../channels/websocket.ts';
import { historyItem, isNoticeType } from './history.ts';
import { TIMESTAMP_WINDOW_MS, isFresh, verifyEd25519 } from './signature.ts';
import { ed25519SignatureKey, type ReplayGuard } from './replay.ts';
import {
  PB_TYPE,
  ProtobufError,
  decodeConnectCommand,
  encodeConnectCommand,
  encodeMessageList,
  encodePong,
  frame,
  parseFrame,
  type ConnectCommand,
} from './protobuf.ts';

/** Web3MQ clients open `wss://<node>/messages` (the SDK appends the path to its connect URL). */
export const WEB3MQ_LIVE_PATH = '/messages';

/** The node id the ConnectResp names; the SDK only keeps it. */
export const NODE_ID = 'herald';

/** A client that has not sent its ConnectReq by then is closed. */
const CONNECT_DEADLINE_MS = 10_000;
/** Clients send a ConnectReq and pings, each well under a hundred bytes of protobuf. */
const MAX_CLIENT_FRAME_BYTES = 4096;
/** Frames a client may send while its ConnectReq is being checked. */
const MAX_EARLY_FRAMES = 16;
/**
 * The ConnectReq names no key, so the user's newest unexpired login keys are tried, at most
 * this many (and then the main key, for its own refusal): anyone may send a ConnectReq, so
 * this bounds the signature checks one unauthenticated socket costs.
 */
export const MAX_KEYS_TRIED = 8;
const MAX_CONNECTIONS_PER_USER = 16;
/** A reader this far behind is cut off; it reads what it missed from the history. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** On shutdown, clients get this long to answer the close frame before their sockets are cut. */
const CLOSE_GRACE_MS = 1000;
/** WebSocket's own "Try Again Later" (RFC 6455 registry): the server cannot take the ConnectReq now. */
const CLOSE_TRY_AGAIN_LATER = 1013;

/** How a refused spend of a ConnectReq signature closes the socket. */
const SPEND_CLOSE = {
  replayed: CLOSE.unauthenticated,
  'user over limit': CLOSE.tooManyConnections,
  'node over limit': CLOSE_TRY_AGAIN_LATER,
} as const;

class Refusal extends Error {
  constructor(
    readonly code: number,
    reason: string,
  ) {
    super(reason);
  }
}

/** Who a ConnectReq proved to be: the user and the login key that signed it. */
interface Signer {
  userId: string;
  pubkey: string;
  expiresAt: number;
}

/**
 * The SDK signs `nodeId + userId + timestamp` with the user's temporary login key and sends
 * the signature as msgSign; the ConnectReq carries no public key, so the user's newest
 * unexpired login keys are tried in turn. A user whose keys have all expired, or a signature
 * by the main key, gets its own reason. An accepted ConnectReq is spent: a copy is refused.
 */
async function authenticate(ctx: AppContext, guard: ReplayGuard, command: ConnectCommand, now: number): Promise<Signer> {
  const { userId, msgSign } = command;
  if (userId === '' || userId.length > 200) throw new Refusal(CLOSE.badRequest, 'the ConnectReq must name a userId');
  if (msgSign === '') throw new Refusal(CLOSE.unauthenticated, 'the ConnectReq has no msgSign');
  if (!isFresh(command.timestamp, now)) {
    throw new Refusal(CLOSE.unauthenticated, `timestamp is more than ${TIMESTAMP_WINDOW_MS / 60_000} minutes away from the server's time`);
  }
  const signed = command.nodeId + userId + String(command.timestamp);
  const keys = await ctx.store.db
    .selectFrom('web3mq_login_keys')
    .select(['pubkey', 'expires_at'])
    .where('user_id', '=', userId)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .limit(MAX_KEYS_TRIED)
    .execute();
  if (keys.length === 0) {
    const expired = await ctx.store.db.selectFrom('web3mq_login_keys').select('pubkey').where('user_id', '=', userId).executeTakeFirst();
    if (expired) throw new Refusal(CLOSE.unauthenticated, 'the temporary key has expired; log in again');
    throw new Refusal(CLOSE.unauthenticated, 'no login key for this userId: log in first');
  }
  const signer = keys.find((key) => verifyEd25519(key.pubkey, signed, msgSign));
  if (signer) {
    const refusal = await guard.claimEverywhere(ed25519SignatureKey(msgSign), userId, command.timestamp, 'write', now);
    if (refusal) {
      const reason = refusal.refused === 'replayed' ? 'this ConnectReq was already used; sign a new one with a new timestamp' : refusal.reason;
      throw new Refusal(SPEND_CLOSE[refusal.refused], reason);
    }
    return { userId, pubkey: signer.pubkey, expiresAt: signer.expires_at };
  }
  const account = await ctx.store.db.selectFrom('web3mq_accounts').select('main_pubkey').where('user_id', '=', userId).executeTakeFirst();
  if (account && verifyEd25519(account.main_pubkey, signed, msgSign)) {
    throw new Refusal(CLOSE.unauthenticated, 'the main key only signs logins; sign with the temporary key');
  }
  throw new Refusal(CLOSE.unauthenticated, 'bad signature: msgSign does not verify with a login key of this userId');
}

/** What the history API lists for a notification, as the MessageItem of a NotificationListResp. */
function notificationListFrame(n: Notification): Buffer {
  // Just committed: neither delivered nor read yet.
  const item = historyItem(n, null);
  // Web3MQ's live payload carries the version and timestamp beside title, content and type;
  // the SDK spreads the payload into the notification it hands the app.
  const payload = { ...item.payload, version: item.version, timestamp: item.timestamp };
  return frame(
    PB_TYPE.notificationList,
    encodeMessageList([
      {
        messageId: item.messageid,
        version: item.version,
        payload: Buffer.from(JSON.stringify(payload), 'utf8'),
        payloadType: item.payload_type,
        comeFrom: item.from,
        fromSign: item.from_sign,
        contentTopic: item.topic,
        cipherSuite: item.cipher_suite,
        timestamp: item.timestamp,
        read: item.read,
        readTimestamp: 0,
      },
    ]),
  );
}

/** One authenticated Web3MQ socket: it gets its user's Web3MQ notifications as they are committed. */
class Web3mqLiveConnection implements LiveConnection {
  readonly channel = 'web3mq' as const;
  readonly station: string;
  alive = true;
  closed = false;

  constructor(
    private readonly ctx: AppContext,
    readonly socket: WebSocket,
    readonly signer: Signer,
  ) {
    // Not a device: named for its key, so it never matches an Ozeki station.
    this.station = `web3mq:${signer.pubkey}`;
  }

  get userId(): string {
    return this.signer.userId;
  }

  deliver(notification: Notification): void {
    if (this.closed || !isNoticeType(notification.type)) return;
    this.socket.send(notificationListFrame(notification), { binary: true });
    this.ctx.metrics.framesSent.inc({ channel: 'web3mq' });
    if (this.socket.bufferedAmount > MAX_QUEUED_BYTES) {
      this.ctx.log.warn({ userId: this.userId }, 'Web3MQ reader too slow; disconnected');
      this.socket.terminate();
    }
  }

  close(reason: string): void {
    if (!this.closed) this.socket.close(CLOSE.unauthenticated, reason);
  }
}

/**
 * Web3MQ's live socket at /messages on the HTTP and HTTPS ports (the upgrade is routed here
 * by the WebSocket channel). The first frame must be a ConnectReq signed with the user's
 * temporary login key; the server answers ConnectResp, answers each Ping with a Pong, and
 * pushes each new Web3MQ notification of that user as a NotificationListResp.
 */
export function startWeb3mqLive(ctx: AppContext, replayGuard: ReplayGuard, options: { pingIntervalMs?: number } = {}) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES, perMessageDeflate: false });
  const connections = new Set<Web3mqLiveConnection>();
  const perUser = new Map<string, number>();
  let closing = false;

  function open(socket: WebSocket): void {
    socket.on('error', (error) => ctx.log.debug({ err: error }, 'Web3MQ socket error'));
    let state: 'awaiting' | 'authenticating' | 'open' = 'awaiting';
    let connection: Web3mqLiveConnection | undefined;
    const early: Array<{ data: RawData; isBinary: boolean }> = [];
    const refuse = (code: number, reason: string) => {
      if (socket.readyState === socket.OPEN) socket.close(code, reason);
    };
    const deadline = setTimeout(() => refuse(CLOSE.unauthenticated, 'no ConnectReq within 10 s'), CONNECT_DEADLINE_MS);
    deadline.unref();

    const receive = (data: RawData, isBinary: boolean) => {
      const parsed = isBinary && Buffer.isBuffer(data) ? parseFrame(data) : undefined;
      if (!parsed) {
        refuse(CLOSE.badRequest, 'a frame is binary: 10, pbType, then protobuf');
        return;
      }
      if (state === 'awaiting') {
        if (parsed.pbType !== PB_TYPE.connectReq) {
          refuse(CLOSE.badRequest, 'the first frame must be a ConnectReq (pbType 2)');
          return;
        }
        state = 'authenticating';
        connect(parsed.body).catch((error) => {
          ctx.log.error({ err: error }, 'Web3MQ connect failed');
          refuse(CLOSE.internalError, 'internal error');
        });
      } else if (state === 'authenticating') {
        if (early.length < MAX_EARLY_FRAMES) early.push({ data, isBinary });
      } else if (parsed.pbType === PB_TYPE.ping) {
        socket.send(frame(PB_TYPE.pong, encodePong(Date.now())), { binary: true });
      }
      // Anything else (chat messages, status changes) is Web3MQ chat, which Herald does not serve.
    };
    socket.on('message', (data, isBinary) => {
      if (connection) connection.alive = true;
      receive(data, isBinary);
    });
    socket.on('pong', () => {
      if (connection) connection.alive = true;
    });
    socket.on('close', () => {
      clearTimeout(deadline);
      if (!connection) return;
      connection.closed = true;
      ctx.hub.remove(connection);
      connections.delete(connection);
      ctx.metrics.liveConnections.dec({ channel: 'web3mq' });
      const left = (perUser.get(connection.userId) ?? 1) - 1;
      if (left > 0) perUser.set(connection.userId, left);
      else perUser.delete(connection.userId);
    });

    async function connect(body: Buffer): Promise<void> {
      let command: ConnectCommand;
      let signer: Signer;
      try {
        try {
          command = decodeConnectCommand(body);
        } catch (error) {
          if (error instanceof ProtobufError) throw new Refusal(CLOSE.badRequest, `malformed ConnectReq: ${error.message}`);
          throw error;
        }
        signer = await authenticate(ctx, replayGuard, command, Date.now());
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        refuse(error.code, error.message);
        return;
      }
      clearTimeout(deadline);
      if (socket.readyState !== socket.OPEN) return;
      if (closing) {
        refuse(CLOSE.shuttingDown, 'server shutting down');
        return;
      }
      const count = perUser.get(signer.userId) ?? 0;
      if (count >= MAX_CONNECTIONS_PER_USER) {
        refuse(CLOSE.tooManyConnections, `at most ${MAX_CONNECTIONS_PER_USER} connections per user`);
        return;
      }
      perUser.set(signer.userId, count + 1);
      socket.send(
        frame(PB_TYPE.connectResp, encodeConnectCommand({ nodeId: NODE_ID, userId: signer.userId, timestamp: Date.now(), msgSign: '' })),
        { binary: true },
      );
      connection = new Web3mqLiveConnection(ctx, socket, signer);
      connections.add(connection);
      ctx.hub.add(connection);
      ctx.metrics.liveConnections.inc({ channel: 'web3mq' });
      state = 'open';
      for (const held of early.splice(0)) receive(held.data, held.isBinary);
    }
  }

  // A connection that did not answer the previous ping is gone (a dead peer never closes);
  // one whose login key has expired must log in again.
  const pinger = setInterval(() => {
    const now = Date.now();
    for (const connection of connections) {
      if (connection.signer.expiresAt <= now) connection.close('the temporary key has expired; log in again');
      else if (!connection.alive) connection.socket.terminate();
      else {
        connection.alive = false;
        connection.socket.ping();
      }
    }
  }, options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS);
  pinger.unref();

  return {
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
      wss.handleUpgrade(request, socket, head, open);
    },

    async close(): Promise<void> {
      closing = true;
      clearInterval(pinger);
      const open = [...wss.clients];
      const gone = open.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
      for (const socket of open) socket.close(CLOSE.shuttingDown, 'server shutting down');
      const grace = setTimeout(() => open.forEach((socket) => socket.terminate()), CLOSE_GRACE_MS);
      await Promise.all(gone);
      clearTimeout(grace);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
