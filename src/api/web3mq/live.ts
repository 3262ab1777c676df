import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import type { Metrics } from '../../metrics.ts';
import type { Notification } from '../../model/notification.ts';
import { CLOSE, Refusal } from '../../channels/live/refusal.ts';
import { cutOffIfBehind, type Handshake, type LiveEndpoint, type LiveSocketConnection } from '../../channels/live/server.ts';
import { historyItem, isNoticeType } from './history.ts';
import type { LoginKeys } from './login-keys.ts';
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
/**
 * The ConnectReq names no key, so the user's newest unexpired login keys are tried, at most
 * this many (and then the main key, for its own refusal): anyone may send a ConnectReq, so
 * this bounds the signature checks one unauthenticated socket costs.
 */
export const MAX_KEYS_TRIED = 8;
const MAX_CONNECTIONS_PER_USER = 16;

/** How a refused spend of a ConnectReq signature closes the socket. */
const SPEND_CLOSE = {
  replayed: CLOSE.unauthenticated,
  'user over limit': CLOSE.tooManyConnections,
  'node over limit': CLOSE.tryAgainLater,
} as const;

const NOT_A_FRAME = new Refusal(CLOSE.badRequest, 'a frame is binary: 10, pbType, then protobuf');

/** A client frame: its pbType and protobuf body. */
type LiveFrame = NonNullable<ReturnType<typeof parseFrame>>;

/** Who a ConnectReq proved to be: the user, and the login key that signed it. */
interface Signer {
  userId: string;
  /** Not a device: named for the key, so it never matches an Ozeki station. */
  station: string;
  expiresAt: number;
}

/** What Web3MQ's live endpoint is built from. */
export interface Web3mqLiveParts {
  keys: LoginKeys;
  /** The same memory of spent signatures as the HTTP API's: a signature may be offered to either. */
  replayGuard: Pick<ReplayGuard, 'claimEverywhere'>;
  metrics: Pick<Metrics, 'framesSent'>;
  log: Logger;
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
class Web3mqLiveConnection implements LiveSocketConnection<LiveFrame> {
  readonly channel = 'web3mq' as const;
  readonly userId: string;
  readonly station: string;
  readonly expiresAt: number;
  closed = false;
  /** The highest sequence offered since the socket opened (it replays nothing: history is a call of its own). */
  deliveredSeq: number | undefined = undefined;

  constructor(
    private readonly endpoint: Web3mqLiveEndpoint,
    readonly socket: WebSocket,
    signer: Signer,
  ) {
    this.userId = signer.userId;
    this.station = signer.station;
    this.expiresAt = signer.expiresAt;
  }

  deliver(notification: Notification): void {
    if (this.deliveredSeq === undefined || notification.seq > this.deliveredSeq) this.deliveredSeq = notification.seq;
    if (this.closed || !isNoticeType(notification.type)) return;
    this.socket.send(notificationListFrame(notification), { binary: true });
    this.endpoint.metrics.framesSent.inc({ channel: 'web3mq' });
    if (cutOffIfBehind(this.socket)) this.endpoint.log.warn({ userId: this.userId }, 'Web3MQ reader too slow; disconnected');
  }

  /** Pings are answered; anything else (chat messages, status changes) is Web3MQ chat, which Herald does not serve. */
  receive(received: LiveFrame): void {
    if (received.pbType === PB_TYPE.ping) this.socket.send(frame(PB_TYPE.pong, encodePong(Date.now())), { binary: true });
  }

  /** A login key lives a day by default: past it, the user must log in again. */
  expired(now: number): string | undefined {
    return this.expiresAt <= now ? 'the temporary key has expired; log in again' : undefined;
  }

  close(reason: string): void {
    if (!this.closed) this.socket.close(CLOSE.unauthenticated, reason);
  }
}

/**
 * Web3MQ's live socket at /messages, an endpoint of the live server on the HTTP and HTTPS
 * ports. The first frame must be a ConnectReq signed with the user's temporary login key;
 * the server answers ConnectResp, answers each Ping with a Pong, and pushes each new Web3MQ
 * notification of that user as a NotificationListResp.
 */
export class Web3mqLiveEndpoint implements LiveEndpoint<LiveFrame, Signer, Web3mqLiveConnection> {
  readonly path = WEB3MQ_LIVE_PATH;
  readonly name = 'Web3MQ';
  readonly limits = { perUser: MAX_CONNECTIONS_PER_USER };
  readonly handshakeTimeout = { ms: CONNECT_DEADLINE_MS, reason: 'no ConnectReq within 10 s' };
  readonly metrics: Web3mqLiveParts['metrics'];
  readonly log: Logger;
  private readonly keys: LoginKeys;
  private readonly replayGuard: Web3mqLiveParts['replayGuard'];

  constructor(parts: Web3mqLiveParts) {
    this.keys = parts.keys;
    this.replayGuard = parts.replayGuard;
    this.metrics = parts.metrics;
    this.log = parts.log;
  }

  /** Web3MQ: every frame is binary, [10, pbType, …protobuf]. */
  decode(data: RawData, isBinary: boolean): LiveFrame | Refusal {
    const parsed = isBinary && Buffer.isBuffer(data) ? parseFrame(data) : undefined;
    return parsed ?? NOT_A_FRAME;
  }

  /** The first frame is the ConnectReq; frames sent while it is checked are kept. */
  async authenticate(_request: IncomingMessage, _url: URL, handshake: Handshake<LiveFrame>): Promise<Signer> {
    const first = await handshake.firstFrame();
    if (first.pbType !== PB_TYPE.connectReq) throw new Refusal(CLOSE.badRequest, 'the first frame must be a ConnectReq (pbType 2)');
    let command: ConnectCommand;
    try {
      command = decodeConnectCommand(first.body);
    } catch (error) {
      if (error instanceof ProtobufError) throw new Refusal(CLOSE.badRequest, `malformed ConnectReq: ${error.message}`);
      throw error;
    }
    return this.verify(command, Date.now());
  }

  /**
   * The SDK signs `nodeId + userId + timestamp` with the user's temporary login key and sends
   * the signature as msgSign; the ConnectReq carries no public key, so the user's newest
   * unexpired login keys are tried in turn. A user whose keys have all expired, or a signature
   * by the main key, gets its own reason. An accepted ConnectReq is spent: a copy is refused.
   */
  private async verify(command: ConnectCommand, now: number): Promise<Signer> {
    const { userId, msgSign } = command;
    if (userId === '' || userId.length > 200) throw new Refusal(CLOSE.badRequest, 'the ConnectReq must name a userId');
    if (msgSign === '') throw new Refusal(CLOSE.unauthenticated, 'the ConnectReq has no msgSign');
    if (!isFresh(command.timestamp, now)) {
      throw new Refusal(
        CLOSE.unauthenticated,
        `timestamp is more than ${TIMESTAMP_WINDOW_MS / 60_000} minutes away from the server's time`,
      );
    }
    const signed = command.nodeId + userId + String(command.timestamp);
    const keys = await this.keys.unexpired(userId, now, MAX_KEYS_TRIED);
    if (keys.length === 0) {
      if (await this.keys.hasAny(userId)) throw new Refusal(CLOSE.unauthenticated, 'the temporary key has expired; log in again');
      throw new Refusal(CLOSE.unauthenticated, 'no login key for this userId: log in first');
    }
    const signer = keys.find((key) => verifyEd25519(key.pubkey, signed, msgSign));
    if (signer) {
      const refusal = await this.replayGuard.claimEverywhere(ed25519SignatureKey(msgSign), userId, command.timestamp, 'write', now);
      if (refusal) {
        const reason =
          refusal.refused === 'replayed' ? 'this ConnectReq was already used; sign a new one with a new timestamp' : refusal.reason;
        throw new Refusal(SPEND_CLOSE[refusal.refused], reason);
      }
      return { userId, station: `web3mq:${signer.pubkey}`, expiresAt: signer.expiresAt };
    }
    const mainKey = await this.keys.mainKey(userId);
    if (mainKey !== undefined && verifyEd25519(mainKey, signed, msgSign)) {
      throw new Refusal(CLOSE.unauthenticated, 'the main key only signs logins; sign with the temporary key');
    }
    throw new Refusal(CLOSE.unauthenticated, 'bad signature: msgSign does not verify with a login key of this userId');
  }

  /** The ConnectResp goes out before the connection is registered, so no notification precedes it. */
  open(socket: WebSocket, signer: Signer): Web3mqLiveConnection {
    socket.send(
      frame(PB_TYPE.connectResp, encodeConnectCommand({ nodeId: NODE_ID, userId: signer.userId, timestamp: Date.now(), msgSign: '' })),
      { binary: true },
    );
    return new Web3mqLiveConnection(this, socket, signer);
  }

  closed(connection: Web3mqLiveConnection): void {
    connection.closed = true;
  }
}
