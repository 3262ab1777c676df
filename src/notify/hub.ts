import type { LiveConnection } from '../model/channel.ts';
import { frameText, type Notification } from '../model/notification.ts';

/**
 * Holds this node's live connections by user and hands each committed notification to
 * them. The frame is serialised once per notification, however many devices get it.
 */
export class Hub {
  private byUser = new Map<string, Set<LiveConnection>>();

  add(connection: LiveConnection): void {
    let set = this.byUser.get(connection.userId);
    if (!set) {
      set = new Set();
      this.byUser.set(connection.userId, set);
    }
    set.add(connection);
  }

  remove(connection: LiveConnection): void {
    const set = this.byUser.get(connection.userId);
    if (!set) return;
    set.delete(connection);
    if (set.size === 0) this.byUser.delete(connection.userId);
  }

  /** Ends this node's live connections of one device, e.g. right after it was removed. */
  disconnectStation(userId: string, station: string, reason: string): void {
    for (const connection of [...(this.byUser.get(userId) ?? [])]) {
      if (connection.station === station) connection.close?.(reason);
    }
  }

  connectionsOf(userId: string): ReadonlySet<LiveConnection> | undefined {
    return this.byUser.get(userId);
  }

  /** The users with live connections on this node, and their connections. */
  users(): IterableIterator<[string, ReadonlySet<LiveConnection>]> {
    return this.byUser.entries();
  }

  get connectionCount(): number {
    let count = 0;
    for (const set of this.byUser.values()) count += set.size;
    return count;
  }

  dispatch(notifications: Notification[]): void {
    for (const notification of notifications) {
      const set = this.byUser.get(notification.userId);
      if (!set) continue;
      const frame = frameText(notification);
      for (const connection of set) connection.deliver(notification, frame);
    }
  }
}
