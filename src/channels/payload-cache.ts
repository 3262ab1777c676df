import type { Notification } from '../model/notification.ts';

/**
 * The pushes of one notification, prepared once. The outbox hands the pushes to all of a
 * user's devices one notification object per batch (and the worker thread gets it once per
 * batch too), so its payload is serialised, measured and turned into bytes once, not once
 * per device, and the devices share one "delivered" outcome. Weak: an entry lives as long
 * as the batch holds its notification.
 *
 * HERALD_NO_PUSH_PAYLOAD_CACHE=1 prepares the push again for every device.
 */
export class PayloadCache<Prepared extends object> {
  private readonly byNotification: WeakMap<Notification, Prepared> | undefined;

  constructor(
    private readonly prepare: (notification: Notification) => Prepared,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.byNotification = env.HERALD_NO_PUSH_PAYLOAD_CACHE === '1' ? undefined : new WeakMap();
  }

  get(notification: Notification): Prepared {
    const cache = this.byNotification;
    if (cache === undefined) return this.prepare(notification);
    let prepared = cache.get(notification);
    if (prepared === undefined) {
      prepared = this.prepare(notification);
      cache.set(notification, prepared);
    }
    return prepared;
  }
}
