import type { Logger } from 'pino';
import type { Disconnect } from '../../cluster/bus.ts';
import type { LiveConnection } from '../../model/channel.ts';
import { frameText } from '../../model/notification.ts';
import type { FeedReader } from '../../notify/feed.ts';
import type { Hub } from '../../notify/hub.ts';

/** Users (or stations) per query. */
const CHUNK = 500;
/** Feed rows read per query while a user is caught up. */
const PAGE = 500;
/** How often every live device is compared with the feed and the devices, whatever the bus says. */
export const SWEEP_INTERVAL_MS = 30_000;

export interface CatchUpParts {
  hub: Pick<Hub, 'users' | 'connectionsOf'>;
  feed: Pick<FeedReader, 'heads' | 'read'>;
  /** Whose each station is, for the stations that are still devices. */
  ownersOf(stations: readonly string[]): Promise<Map<string, string>>;
  /** Ends a device's connections on this node, as a disconnect from the bus would. */
  disconnect(disconnect: Disconnect): void;
  log: Logger;
  sweepIntervalMs?: number;
  /** Told what each finished run found (metrics). */
  onRun?(found: { delivered: number; disconnected: number }): void;
}

/** What catching up found, for the log and for tests. */
export interface CatchUpCounts {
  /** Runs finished. */
  runs: number;
  /** Notifications handed to connections from the feed. */
  delivered: number;
  /** Devices found gone (removed, or bound to another user) and disconnected. */
  disconnected: number;
}

/**
 * Makes live delivery at least once when the bus is not: on a hint that bus messages were
 * lost (and every SWEEP_INTERVAL_MS anyway) it compares the head of each live user's feed
 * with what that user's connections were handed, reads the difference from the feed and
 * hands it to the connections that lack it, oldest first. Each connection keeps its own
 * order and drops what it already has, so a notification that also arrives by the bus is
 * not sent twice. The same run checks that every live device still exists and still
 * belongs to its user, which makes lost disconnects good too. In the normal case it costs
 * nothing per notification: one query of feed heads per 500 live users per run.
 */
export class LiveCatchUp {
  readonly counts: CatchUpCounts = { runs: 0, delivered: 0, disconnected: 0 };
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly parts: CatchUpParts) {
    this.sweeper = setInterval(() => this.request(), parts.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /** Asks for a run; requests during a run make one more run after it, not one each. */
  request(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.runUntilQuiet().finally(() => (this.running = undefined));
  }

  /** Resolves once no run is under way (tests, and stop). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    return this.settled();
  }

  private async runUntilQuiet(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.run();
        this.counts.runs++;
      } catch (error) {
        // The database is away: the next hint or sweep tries again.
        this.parts.log.warn({ err: error }, 'catching up live devices from the feed failed');
        return;
      }
    } while (this.again && !this.closed);
  }

  private async run(): Promise<void> {
    const users: string[] = [];
    const stations = new Map<string, LiveConnection[]>();
    for (const [userId, connections] of this.parts.hub.users()) {
      users.push(userId);
      for (const connection of connections) {
        // Web3MQ sockets stand for a login key, not a device; their key's expiry ends them.
        if (connection.channel === 'web3mq') continue;
        const list = stations.get(connection.station);
        if (list) list.push(connection);
        else stations.set(connection.station, [connection]);
      }
    }
    let delivered = 0;
    for (let i = 0; i < users.length && !this.closed; i += CHUNK) {
      const chunk = users.slice(i, i + CHUNK);
      const heads = await this.parts.feed.heads(chunk);
      for (const userId of chunk) {
        const after = this.handedThrough(userId);
        const head = heads.get(userId);
        if (after !== undefined && head !== undefined && head > after) delivered += await this.fill(userId, after);
      }
    }
    this.counts.delivered += delivered;

    let disconnected = 0;
    const all = [...stations.keys()];
    for (let i = 0; i < all.length && !this.closed; i += CHUNK) {
      const chunk = all.slice(i, i + CHUNK);
      const owners = await this.parts.ownersOf(chunk);
      for (const station of chunk) {
        for (const connection of stations.get(station)!) {
          if (owners.get(station) === connection.userId) continue;
          disconnected++;
          this.parts.disconnect({ userId: connection.userId, station, reason: 'this device was removed' });
          break;
        }
      }
    }
    this.counts.disconnected += disconnected;
    this.parts.onRun?.({ delivered, disconnected });
    if (delivered > 0 || disconnected > 0) {
      this.parts.log.info({ delivered, disconnected }, 'live devices caught up from the database');
    }
  }

  /** The lowest sequence the user's connections were all handed; undefined when none follows the feed. */
  private handedThrough(userId: string): number | undefined {
    let lowest: number | undefined;
    for (const connection of this.parts.hub.connectionsOf(userId) ?? []) {
      const seq = connection.deliveredSeq;
      if (seq !== undefined && (lowest === undefined || seq < lowest)) lowest = seq;
    }
    return lowest;
  }

  /** Reads the user's feed after `after` and hands each connection what it lacks; says how many it handed. */
  private async fill(userId: string, after: number): Promise<number> {
    let handed = 0;
    for (;;) {
      const page = await this.parts.feed.read(userId, after, PAGE);
      // The connections as they are now: some may have come or gone during the read.
      const connections = this.parts.hub.connectionsOf(userId);
      if (!connections) return handed;
      for (const notification of page) {
        const frame = frameText(notification);
        for (const connection of connections) {
          const seq = connection.deliveredSeq;
          if (seq === undefined || notification.seq <= seq) continue;
          connection.deliver(notification, frame);
          handed++;
        }
      }
      if (page.length < PAGE) return handed;
      after = page[page.length - 1].seq;
    }
  }
}
