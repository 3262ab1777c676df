import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { createUser } from '../src/chat/users.ts';
import { appendNotifications, feedHead, readFeed } from '../src/notify/feed.ts';

/**
 * A SQLite store remembers where feeds stand between transactions. These are the ways the
 * remembered heads could go stale; after each, the feed must go on without a gap and
 * without a number given twice.
 */
describe('remembered feed heads on sqlite', () => {
  let dir: string;
  let file: string;
  let store: Store;
  let notifier: Notifier;
  let userId: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-heads-'));
    file = path.join(dir, 'herald.db');
    store = await openStore({ sqliteFile: file });
    notifier = new Notifier(store, new LocalBus());
    userId = (await createUser(store.db, store.secrets, { email: 'ann@example.org', name: 'Ann' })).userid;
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const notify = (title: string, on = notifier) => on.transact((_trx, emit) => emit([{ userId, type: 'test', title, unread: 1 }]));

  async function expectWholeFeed(titles: string[]): Promise<void> {
    const feed = await readFeed(store.db, userId, 0, 10_000);
    expect(feed.map((n) => n.title)).toEqual(titles);
    expect(feed.map((n) => n.seq)).toEqual(titles.map((_, i) => i + 1));
    expect(feed.map((n) => n.badge)).toEqual(titles.map((_, i) => i + 1));
    expect(await feedHead(store.db, userId)).toEqual({ lastSeq: titles.length, badge: titles.length });
  }

  it('another connection to the same file appends in between', async () => {
    await notify('a1');
    const other = await openStore({ sqliteFile: file });
    try {
      await notify('b1', new Notifier(other, new LocalBus()));
      await notify('b2', new Notifier(other, new LocalBus()));
    } finally {
      await other.close();
    }
    await notify('a2');
    await expectWholeFeed(['a1', 'b1', 'b2', 'a2']);
  });

  it('a transaction of its own, not through the notifier, commits rows', async () => {
    await store.db
      .transaction()
      .execute((trx) => appendNotifications(trx, [{ userId, type: 'test', title: 'direct', unread: 1 }], { bulk: store.bulk }));
    await notify('after direct');
    await expectWholeFeed(['a1', 'b1', 'b2', 'a2', 'direct', 'after direct']);
  });

  it('a transaction of its own, not through the notifier, rolls back', async () => {
    await expect(
      store.db.transaction().execute(async (trx) => {
        await appendNotifications(trx, [{ userId, type: 'test', title: 'gone', unread: 1 }], { bulk: store.bulk });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await notify('after rollback');
    await expectWholeFeed(['a1', 'b1', 'b2', 'a2', 'direct', 'after direct', 'after rollback']);
  });

  it('a unit rolled back to its savepoint between two units of one transaction', async () => {
    // Queued together, the three share one transaction.
    const results = await Promise.allSettled([
      notify('first'),
      notifier.transact(async (_trx, emit) => {
        await emit([{ userId, type: 'test', title: 'undone', unread: 1 }]);
        throw new Error('unit fails');
      }),
      notify('third'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    await notify('next transaction');
    await expectWholeFeed(['a1', 'b1', 'b2', 'a2', 'direct', 'after direct', 'after rollback', 'first', 'third', 'next transaction']);
  });
});
