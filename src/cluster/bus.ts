import type { Notification } from '../notify/model.ts';

/**
 * Carries committed notifications to the node that holds the recipient's live
 * connections. In-process on a single node; Redis pub/sub when several nodes run.
 */
export interface Bus {
  publish(notifications: Notification[]): Promise<void>;
  /** Called on every node for notifications published anywhere. */
  subscribe(handler: (notifications: Notification[]) => void): void;
  close(): Promise<void>;
}

export class LocalBus implements Bus {
  private handlers: Array<(notifications: Notification[]) => void> = [];

  async publish(notifications: Notification[]): Promise<void> {
    for (const handler of this.handlers) handler(notifications);
  }

  subscribe(handler: (notifications: Notification[]) => void): void {
    this.handlers.push(handler);
  }

  async close(): Promise<void> {
    this.handlers = [];
  }
}
