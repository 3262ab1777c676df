import { Redis } from 'ioredis';
import type { Notification } from '../model/notification.ts';
import type { Bus, Disconnect } from './bus.ts';
import type { SpentSignatures } from './spent-signatures.ts';

const CHANNEL = 'herald:notifications';
const DISCONNECT_CHANNEL = 'herald:disconnect';
const PREFERENCES_CHANNEL = 'herald:preferences';
const SPENT_PREFIX = 'herald:spent:';

/**
 * Publishes committed notifications to every node through Redis pub/sub, and keeps the
 * spent signatures every node must see.
 */
export class RedisBus implements Bus, SpentSignatures {
  private handlers: Array<(notifications: Notification[]) => void> = [];
  private disconnectHandlers: Array<(disconnect: Disconnect) => void> = [];
  private preferencesHandlers: Array<(userId: string) => void> = [];

  private constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
  ) {
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.toString() === DISCONNECT_CHANNEL) {
        const disconnect = JSON.parse(message.toString('utf8')) as Disconnect;
        for (const handler of this.disconnectHandlers) handler(disconnect);
        return;
      }
      if (channel.toString() === PREFERENCES_CHANNEL) {
        const userId = message.toString('utf8');
        for (const handler of this.preferencesHandlers) handler(userId);
        return;
      }
      const notifications = JSON.parse(message.toString('utf8')) as Notification[];
      for (const handler of this.handlers) handler(notifications);
    });
  }

  static async connect(url: string): Promise<RedisBus> {
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
      await sub.subscribe(CHANNEL, DISCONNECT_CHANNEL, PREFERENCES_CHANNEL);
    } catch (error) {
      pub.disconnect();
      sub.disconnect();
      throw firstError ?? error;
    } finally {
      pub.off('error', remember);
      sub.off('error', remember);
    }
    return new RedisBus(pub, sub);
  }

  async publish(notifications: Notification[]): Promise<void> {
    await this.pub.publish(CHANNEL, JSON.stringify(notifications));
  }

  subscribe(handler: (notifications: Notification[]) => void): void {
    this.handlers.push(handler);
  }

  async publishDisconnect(disconnect: Disconnect): Promise<void> {
    await this.pub.publish(DISCONNECT_CHANNEL, JSON.stringify(disconnect));
  }

  onDisconnect(handler: (disconnect: Disconnect) => void): void {
    this.disconnectHandlers.push(handler);
  }

  async publishPreferences(userId: string): Promise<void> {
    await this.pub.publish(PREFERENCES_CHANNEL, userId);
  }

  onPreferences(handler: (userId: string) => void): void {
    this.preferencesHandlers.push(handler);
  }

  async spendEverywhere(key: string, use: 'read' | 'write', ttlMs: number): Promise<boolean> {
    const name = SPENT_PREFIX + key;
    if ((await this.pub.set(name, use, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK') return true;
    // Gone in between (its time ran out): the signature's timestamp is no longer fresh either.
    return use === 'read' && (await this.pub.get(name)) === 'read';
  }

  async close(): Promise<void> {
    this.handlers = [];
    this.disconnectHandlers = [];
    this.preferencesHandlers = [];
    this.sub.disconnect();
    await this.pub.quit();
  }
}
