import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import type { Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { createUser } from '../src/chat/users.ts';
import { feedHead, readFeed } from '../src/notify/feed.ts';
import type { Notification } from '../src/model/notification.ts';

describeEachStore('the per-user feed', (kind) => {
  let store: Store;
  let notifier: Notifier;
  const published: Notification[] = [];
  const users: string[] = [];

  beforeAll(async () => {
    store = await kind.open();
    const bus = new LocalBus();
    bus.subscribe((list) => published.push(...list));
    notifier = new Notifier(store, bus);
    for (const name of ['ann', 'ben', 'cat']) {
      users.push((await createUser(store.db, store.secrets, { email: `${name}@example.org`, name })).userid);
    }
  });
  afterAll(async () => store?.close());

  it('hands out strictly increasing sequence numbers without gaps, also under concurrent writers', async () => {
    // 40 concurrent transactions, each notifying all three users, some twice in one batch.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        notifier.transact(async (_trx, emit) => {
          const drafts = users.map((userId) => ({ userId, type: 'test' as const, title: `t${i}`, unread: 1 }));
          if (i % 4 === 0) drafts.push({ userId: users[0], type: 'test', title: `t${i}b`, unread: 1 });
          await emit(drafts);
        }),
      ),
    );
    for (const [index, userId] of users.entries()) {
      const feed = await readFeed(store.db, userId, 0, 10_000);
      const expected = index === 0 ? 50 : 40;
      expect(feed.map((n) => n.seq)).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
      expect(new Set(feed.map((n) => n.id)).size).toBe(expected);
      expect(await feedHead(store.db, userId)).toEqual({ lastSeq: expected, badge: expected });
      // The badge of the newest notification is the total unread count.
      expect(feed.at(-1)!.badge).toBe(expected);
    }
    expect(published.length).toBe(130);
  });

  it('a failed transaction leaves no notification and no hole in the sequence', async () => {
    const before = (await readFeed(store.db, users[1], 0, 10_000)).length;
    await expect(
      notifier.transact(async (_trx, emit) => {
        await emit([{ userId: users[1], type: 'test', title: 'doomed' }]);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await notifier.transact((_trx, emit) => emit([{ userId: users[1], type: 'test', title: 'next' }]));
    const feed = await readFeed(store.db, users[1], 0, 10_000);
    expect(feed.length).toBe(before + 1);
    expect(feed.at(-1)).toMatchObject({ seq: before + 1, title: 'next' });
    expect(published.some((n) => n.title === 'doomed')).toBe(false);
  });

  it('in a burst of concurrent writes, a failing one fails alone and the others commit', async () => {
    const before = (await readFeed(store.db, users[2], 0, 10_000)).length;
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        notifier.transact(async (_trx, emit) => {
          await emit([{ userId: users[2], type: 'test', title: `burst ${i}` }]);
          if (i === 5) throw new Error('unit 5 fails');
          return i;
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect(results[5]).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: 'unit 5 fails' }) });
    const feed = await readFeed(store.db, users[2], before, 10_000);
    expect(feed.map((n) => n.title).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `burst ${i}`)
        .filter((t) => t !== 'burst 5')
        .sort(),
    );
    expect(feed.map((n) => n.seq)).toEqual(Array.from({ length: 11 }, (_, i) => before + i + 1));
  });

  it("a conversation's messages commit in the order they were handed in, beside other work", async () => {
    const before = (await readFeed(store.db, users[0], 0, 10_000)).length;
    // Keyed work (three conversations) between unkeyed work, enough of it at once for
    // PostgreSQL to run transactions side by side.
    await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const key = i % 4 === 3 ? undefined : `conversation-${i % 4}`;
        return notifier.transact(
          async (_trx, emit) => emit([{ userId: users[0], type: 'test', title: `${key ?? 'none'} ${i}`, unread: 1 }]),
          key,
        );
      }),
    );
    const feed = await readFeed(store.db, users[0], before, 10_000);
    expect(feed.map((n) => n.seq)).toEqual(Array.from({ length: 60 }, (_, i) => before + i + 1));
    for (const key of ['conversation-0', 'conversation-1', 'conversation-2']) {
      const order = feed.filter((n) => n.title.startsWith(`${key} `)).map((n) => Number(n.title.split(' ')[1]));
      expect(order).toHaveLength(15);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
  });
});
