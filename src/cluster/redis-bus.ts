import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Notification } from '../model/notification.ts';
import type { Bus, Disconnect } from './bus.ts';
import type { SpentSignatures } from './spent-signatures.ts';

const CHANNEL = 'herald:notifications';
const DISCONNECT_CHANNEL = 'herald:disconnect';
const PREFERENCES_CHANNEL = 'herald:preferences';
const BEAT_CHANNEL = 'herald:beat';
const SPENT_PREFIX = 'herald:spent:';
const LINE_BREAK = 0x0a;
const TAB = 0x09;

/** Every node says its current sequence this often, so a lost last message is noticed. */
export const BEAT_INTERVAL_MS = 1000;
/** A node not heard from for this long may have sent something this node never got. */
export const SILENT_AFTER_MS = 3500;

/**
 * Test only: the share of received bus messages (0 to 1) thrown away as if Redis had lost
 * them, to prove that the feed makes up for them. Read once at start; off unless set.
 */
const TEST_DROP_RATE = Math.min(1, Math.max(0, Number(process.env.HERALD_TEST_BUS_DROP) || 0));

/** A handler of notifications, and whose notifications it needs (everyone's without `wants`). */
interface Subscriber {
  handler: (notifications: Notification[]) => void;
  wants?: (userId: string) => boolean;
}

/** What one node last told this one: its sequence, and when. */
interface Peer {
  seq: number;
  heardAt: number;
}

export interface RedisBusOptions {
  /** Told when a publish to Redis fails (the notifications are committed; the feed has them). */
  onPublishError?: (error: unknown) => void;
  /** Share of received messages dropped on purpose (tests); HERALD_TEST_BUS_DROP otherwise. */
  dropRate?: number;
}

/**
 * Publishes committed notifications to every node through Redis pub/sub, and keeps the
 * spent signatures every node must see.
 *
 * Pub/sub is at most once, so every message carries its node's id and a sequence number
 * that node counts up one per message, and every node says where its count stands once a
 * second (`beat`). A receiver that sees a gap in a node's count, stops hearing a node, or
 * whose own subscription dropped and came back says so (onPossibleLoss): the node then
 * reads what its live devices missed from the feed. A node's own messages reach its own
 * handlers in process, before Redis, so its devices never wait on Redis, and a commit
 * never waits for a publish. What comes back to it from Redis is dropped unread.
 *
 * A message of notifications is a header line (node and sequence) followed by one line per
 * notification, its user id in JSON, a tab, then the notification in JSON (JSON text holds no
 * raw tab or line break). A node parses only the lines of users some subscriber wants, those
 * it holds live connections of: with the devices spread over k nodes, each parses about 1/k
 * of the notifications instead of all of them.
 */
export class RedisBus implements Bus, SpentSignatures {
  /** Changes with every process: a restarted node counts from 1 again under a new id. */
  readonly nodeId = randomBytes(8).toString('hex');
  private seq = 0;
  private readonly peers = new Map<string, Peer>();
  private subscribers: Subscriber[] = [];
  private disconnectHandlers: Array<(disconnect: Disconnect) => void> = [];
  private preferencesHandlers: Array<(userId: string) => void> = [];
  private lossHandlers: Array<(why: string) => void> = [];
  private readonly beater: NodeJS.Timeout;
  private readonly onPublishError: (error: unknown) => void;
  readonly dropRate: number;
  /** Received messages dropped on purpose (tests). */
  dropped = 0;
  /** How this node's own messages begin: they come back from Redis, and are dropped unread. */
  private readonly ownPrefix: Buffer;

  private constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    options: RedisBusOptions,
  ) {
    this.onPublishError = options.onPublishError ?? (() => {});
    this.dropRate = options.dropRate ?? TEST_DROP_RATE;
    this.ownPrefix = Buffer.from(`{"node":"${this.nodeId}",`);
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const own = this.ownPrefix;
      if (message.length >= own.length && message.compare(own, 0, own.length, 0, own.length) === 0) return;
      this.received(channel.toString(), message);
    });
    // ioredis subscribes again by itself after a reconnect; whatever was published meanwhile is gone.
    sub.on('ready', () => this.possibleLoss('the Redis subscription was restored'));
    // Without a listener an error event would end the process; ioredis reconnects by itself.
    pub.on('error', () => {});
    sub.on('error', () => {});
    this.beater = setInterval(() => this.beat(), BEAT_INTERVAL_MS);
    this.beater.unref();
  }

  static async connect(url: string, options: RedisBusOptions = {}): Promise<RedisBus> {
    const pub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    const sub = new Redis(url, { lazyConnect: true });
    // A first connection that fails rejects with the socket's own error (ECONNREFUSED…),
    // not ioredis' "Connection is closed", and is not retried for ever.
    let firstError: Error | undefined;
    const remember = (error: Error) => void (firstError ??= error);
    pub.on('error', remember);
    sub.on('error', remember);
    try {
      await pub.connect();
      await sub.connect();
      await sub.subscribe(CHANNEL, DISCONNECT_CHANNEL, PREFERENCES_CHANNEL, BEAT_CHANNEL);
    } catch (error) {
      pub.disconnect();
      sub.disconnect();
      throw firstError ?? error;
    } finally {
      pub.off('error', remember);
      sub.off('error', remember);
    }
    return new RedisBus(pub, sub, options);
  }

  private received(channel: string, bytes: Buffer): void {
    if (this.dropRate > 0 && Math.random() < this.dropRate) {
      this.dropped++;
      return;
    }
    // The header: the whole text, or its first line when notifications follow it line by line.
    const newline = bytes.indexOf(LINE_BREAK);
    let message: { node: string; seq: number; body?: unknown };
    try {
      message = JSON.parse(bytes.toString('utf8', 0, newline === -1 ? bytes.length : newline));
    } catch {
      return;
    }
    if (typeof message?.node !== 'string' || typeof message.seq !== 'number' || message.node === this.nodeId) return;
    const peer = this.peers.get(message.node);
    // A node not heard from yet counts from 0: its first message shows whether any came before.
    const expected = (peer?.seq ?? 0) + (channel === BEAT_CHANNEL ? 0 : 1);
    if (peer) {
      peer.heardAt = Date.now();
      if (message.seq > peer.seq) peer.seq = message.seq;
    } else {
      this.peers.set(message.node, { seq: message.seq, heardAt: Date.now() });
    }
    if (message.seq > expected) this.possibleLoss(`bus messages from node ${message.node} were lost`);
    switch (channel) {
      case CHANNEL: {
        // A body array is how nodes of earlier versions send them. A node of another version
        // may say something else here: the catch-up from the feed covers it.
        const notifications = newline !== -1 ? this.wantedLines(bytes, newline + 1) : message.body;
        if (!Array.isArray(notifications) || notifications.length === 0) return;
        for (const { handler } of this.subscribers) handler(notifications as Notification[]);
        break;
      }
      case DISCONNECT_CHANNEL:
        for (const handler of this.disconnectHandlers) handler(message.body as Disconnect);
        break;
      case PREFERENCES_CHANNEL:
        for (const handler of this.preferencesHandlers) handler(message.body as string);
        break;
    }
  }

  /**
   * The notifications of the lines from `start` on whose users a subscriber wants; a line
   * that does not parse is left out. The lines are found in the bytes (a tab or a line break
   * is never part of a longer UTF-8 sequence), and only the wanted ones are decoded.
   */
  private wantedLines(bytes: Buffer, start: number): Notification[] {
    const subscribers = this.subscribers;
    const everyone = subscribers.some((s) => s.wants === undefined);
    const notifications: Notification[] = [];
    while (start < bytes.length) {
      let end = bytes.indexOf(LINE_BREAK, start);
      if (end === -1) end = bytes.length;
      const tab = bytes.indexOf(TAB, start);
      if (tab !== -1 && tab < end) {
        try {
          if (everyone || wanted(subscribers, userIdOf(bytes.toString('utf8', start, tab))))
            notifications.push(JSON.parse(bytes.toString('utf8', tab + 1, end)));
        } catch {
          // not a line this node can read; the rest still can be
        }
      }
      start = end + 1;
    }
    return notifications;
  }

  /** Says where this node's count stands, and notices the nodes that went quiet. */
  private beat(): void {
    this.pub.publish(BEAT_CHANNEL, `{"node":"${this.nodeId}","seq":${this.seq}}`).catch(() => {});
    const now = Date.now();
    for (const [node, peer] of this.peers) {
      if (now - peer.heardAt <= SILENT_AFTER_MS) continue;
      // Gone (stopped, killed, or cut off): when it is heard again it counts as new, from 0.
      this.peers.delete(node);
      this.possibleLoss(`node ${node} went quiet`);
    }
  }

  private possibleLoss(why: string): void {
    for (const handler of this.lossHandlers) handler(why);
  }

  /** Sends one message in order behind the others; a failed send shows up as a gap on the other nodes. */
  private send(channel: string, body: string, lines = false): Promise<void> {
    const text = lines
      ? `{"node":"${this.nodeId}","seq":${++this.seq}}\n${body}`
      : `{"node":"${this.nodeId}","seq":${++this.seq},"body":${body}}`;
    return this.pub.publish(channel, text).then(
      () => undefined,
      (error: unknown) => this.onPublishError(error),
    );
  }

  async publish(notifications: Notification[]): Promise<void> {
    for (const { handler } of this.subscribers) handler(notifications);
    if (notifications.length === 0) return;
    let lines = '';
    for (let i = 0; i < notifications.length; i++) {
      const n = notifications[i];
      lines += `${i === 0 ? '' : '\n'}${JSON.stringify(n.userId)}\t${JSON.stringify(n)}`;
    }
    void this.send(CHANNEL, lines, true);
  }

  subscribe(handler: (notifications: Notification[]) => void, wants?: (userId: string) => boolean): void {
    this.subscribers.push({ handler, wants });
  }

  async publishDisconnect(disconnect: Disconnect): Promise<void> {
    this.disconnectHere(disconnect);
    await this.send(DISCONNECT_CHANNEL, JSON.stringify(disconnect));
  }

  onDisconnect(handler: (disconnect: Disconnect) => void): void {
    this.disconnectHandlers.push(handler);
  }

  disconnectHere(disconnect: Disconnect): void {
    for (const handler of this.disconnectHandlers) handler(disconnect);
  }

  async publishPreferences(userId: string): Promise<void> {
    for (const handler of this.preferencesHandlers) handler(userId);
    await this.send(PREFERENCES_CHANNEL, JSON.stringify(userId));
  }

  onPreferences(handler: (userId: string) => void): void {
    this.preferencesHandlers.push(handler);
  }

  onPossibleLoss(handler: (why: string) => void): void {
    this.lossHandlers.push(handler);
  }

  async spendEverywhere(key: string, use: 'read' | 'write', ttlMs: number): Promise<boolean> {
    const name = SPENT_PREFIX + key;
    if ((await this.pub.set(name, use, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK') return true;
    // Gone in between (its time ran out): the signature's timestamp is no longer fresh either.
    return use === 'read' && (await this.pub.get(name)) === 'read';
  }

  async close(): Promise<void> {
    clearInterval(this.beater);
    this.subscribers = [];
    this.disconnectHandlers = [];
    this.preferencesHandlers = [];
    this.lossHandlers = [];
    this.sub.disconnect();
    await this.pub.quit().catch(() => undefined);
  }
}

/** A user id from its JSON text: most need no unescaping. */
function userIdOf(quoted: string): string {
  return quoted.includes('\\') ? (JSON.parse(quoted) as string) : quoted.slice(1, -1);
}

function wanted(subscribers: Subscriber[], userId: string): boolean {
  for (const subscriber of subscribers) if (subscriber.wants!(userId)) return true;
  return false;
}
