import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { createUser } from '../src/chat/users.ts';
import { readFeed } from '../src/notify/feed.ts';
import { HeraldError } from '../src/errors.ts';
import { describeEachStore } from './helpers/stores.ts';

describeEachStore('stopping the notifier', (kind) => {
  let store: Store;
  let userId: string;

  beforeAll(async () => {
    store = await kind.open();
    userId = (await createUser(store.db, store.secrets, { email: 'drain@example.org', name: 'Drain' })).userid;
  });
  afterAll(async () => store?.close());

  it('commits everything queued before close() resolves, then refuses new work with 503', async () => {
    const notifier = new Notifier(store, new LocalBus());
    const accepted = Array.from({ length: 300 }, (_, i) =>
      notifier.transact(async (_trx, emit) => {
        await emit([{ userId, type: 'test', title: `n${i}`, unread: 1 }]);
        return i;
      }),
    );
    let settled = 0;
    for (const promise of accepted) void promise.finally(() => settled++).catch(() => undefined);
    // close() is called while the batches are still being written, and waits for all of them.
    await notifier.close();
    await Promise.resolve();
    expect(settled).toBe(accepted.length);
    const results = await Promise.allSettled(accepted);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    // Each one once, numbered without a gap. (On PostgreSQL batches run side by side, so work
    // queued at the same moment may commit in another order than it was handed in.)
    const feed = await readFeed(store.db, userId, 0, 1000);
    expect(feed.map((n) => n.title).sort()).toEqual(accepted.map((_, i) => `n${i}`).sort());
    expect(feed.map((n) => n.seq)).toEqual(accepted.map((_, i) => i + 1));

    const refused = await notifier.transact(async () => 'late').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(HeraldError);
    expect((refused as HeraldError).httpStatus).toBe(503);
    // Nothing runs against the store after close(): closing it now is clean.
    await expect(notifier.close()).resolves.toBeUndefined();
  });
});
