import type { Notification } from '../model/notification.ts';

/** Hears every committed notification; `notifications` is shared with the other watchers. */
export type NotificationWatcher = (notifications: readonly Notification[]) => void;

/**
 * Whoever watches all notifications as they are published (the console's live tail). Fed
 * from the bus, so a watcher on one node sees what every node commits. Watchers come and go,
 * which the bus's subscribers cannot.
 */
export class NotificationWatchers {
  private readonly watchers = new Set<NotificationWatcher>();

  readonly publish = (notifications: readonly Notification[]): void => {
    for (const watcher of this.watchers) watcher(notifications);
  };

  /** Starts hearing notifications; the answer stops it. */
  watch(watcher: NotificationWatcher): () => void {
    // Wrapped, so the same function may watch twice and each stop ends one of them.
    const entry: NotificationWatcher = (notifications) => watcher(notifications);
    this.watchers.add(entry);
    return () => void this.watchers.delete(entry);
  }

  get size(): number {
    return this.watchers.size;
  }
}
