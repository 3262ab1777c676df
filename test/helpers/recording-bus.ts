import { LocalBus } from '../../src/cluster/bus.ts';

/** A LocalBus that tells `onPublish` the titles of each publication, in order, before delivering it. */
export function recordingBus(onPublish: (titles: string[]) => void): LocalBus {
  return new (class extends LocalBus {
    override async publish(notifications: Parameters<LocalBus['publish']>[0]) {
      onPublish(notifications.map((n) => n.title));
      await super.publish(notifications);
    }
  })();
}
