import type { Notification } from '../model/notification.ts';

/**
 * Publish/subscribe between the nodes. Carries committed notifications to the node that holds the recipient's live
 * connections. In-process on a single node; Redis pub/sub when several nodes run. Delivery may lose messages (Redis
 * pub/sub is at most once): a bus that notices it may have lost one says so (onPossibleLoss), and the node then reads
 * what its live devices are missing from the durable feed.
 */
export interface Bus {
  publish(notifications: Notification[]): Promise<void>;
  /**
   * Called on every node for notifications published anywhere. With `wants`, the handler
   * needs only the notifications of the users it names: a bus may then leave the others of
   * other nodes unread (RedisBus does not parse them), and hands the handler a list that may
   * still hold some it did not ask for.
   */
  subscribe(handler: (notifications: Notification[]) => void, wants?: (userId: string) => boolean): void;
  /** Asks every node to end the live connections of one device (it was removed). */
  publishDisconnect(disconnect: Disconnect): Promise<void>;
  /** Called on every node for a disconnect published anywhere. */
  onDisconnect(handler: (disconnect: Disconnect) => void): void;
  /** Runs this node's disconnect handlers only: a check found one of its devices gone. */
  disconnectHere(disconnect: Disconnect): void;
  /** Tells every node that a user's alert preferences changed (they re-read them). */
  publishPreferences(userId: string): Promise<void>;
  /** Called on every node for a change of preferences published anywhere. */
  onPreferences(handler: (userId: string) => void): void;
  /**
   * Called when messages from another node may have been lost: a gap in its sequence, its
   * heartbeat gone quiet, or this node's own link to the bus dropped and came back.
   */
  onPossibleLoss(handler: (why: string) => void): void;
  close(): Promise<void>;
}

/** A device whose live connections must end, on whichever node holds them. */
export interface Disconnect {
  userId: string;
  station: string;
  reason: string;
}

export class LocalBus implements Bus {
  private handlers: Array<(notifications: Notification[]) => void> = [];
  private disconnectHandlers: Array<(disconnect: Disconnect) => void> = [];
  private preferencesHandlers: Array<(userId: string) => void> = [];

  async publish(notifications: Notification[]): Promise<void> {
    for (const handler of this.handlers) handler(notifications);
  }

  subscribe(handler: (notifications: Notification[]) => void): void {
    this.handlers.push(handler);
  }

  async publishDisconnect(disconnect: Disconnect): Promise<void> {
    for (const handler of this.disconnectHandlers) handler(disconnect);
  }

  onDisconnect(handler: (disconnect: Disconnect) => void): void {
    this.disconnectHandlers.push(handler);
  }

  disconnectHere(disconnect: Disconnect): void {
    for (const handler of this.disconnectHandlers) handler(disconnect);
  }

  async publishPreferences(userId: string): Promise<void> {
    for (const handler of this.preferencesHandlers) handler(userId);
  }

  onPreferences(handler: (userId: string) => void): void {
    this.preferencesHandlers.push(handler);
  }

  /** In process nothing is lost. */
  onPossibleLoss(): void {}

  async close(): Promise<void> {
    this.handlers = [];
    this.disconnectHandlers = [];
    this.preferencesHandlers = [];
  }
}
