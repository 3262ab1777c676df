import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { recordingBus } from './helpers/recording-bus.ts';
import { createUser } from '../src/chat/users.ts';
import { readFeed } from '../src/notify/feed.ts';
import { describeOnPostgres, POSTGRES } from './helpers/stores.ts';

describeOnPostgres('group commit on PostgreSQL', () => {
  let store: Store;
  let userId: string;

  beforeAll(async () => {
    store = await POSTGRES!.open();
    userId = (await createUser(store.db, store.secrets, { email: 'batches@example.org', name: 'Batches' })).userid;
  });
  afterAll(async () => store?.close());

  it('messages of one conversation queued together each commit on their own, in the order they were sent', async () => {
    const notifier = new Notifier(store, new LocalBus());
    const send = (key: string, title: string) =>
      notifier.transact(async (trx, emit) => {
        const { rows } = await sql<{ id: string }>`SELECT txid_current()::text AS id`.execute(trx);
        await emit([{ userId, type: 'test', title, unread: 1 }]);
        return rows[0].id;
      }, key);
    // Queued in one turn of the event loop: without the rule they would share one transaction.
    const [a1, a2, a3, b1] = await Promise.all([send('a', 'a1'), send('a', 'a2'), send('a', 'a3'), send('b', 'b1')]);
    expect(new Set([a1, a2, a3]).size).toBe(3);
    // Another conversation's message still shares the first transaction.
    expect(b1).toBe(a1);
    const titles = (await readFeed(store.db, userId, 0, 10)).map((n) => n.title);
    expect(titles.filter((t) => t.startsWith('a'))).toEqual(['a1', 'a2', 'a3']);
    await notifier.close();
  });

  it("starts a conversation's next transaction before publishing the previous one's notifications, and publishes in order", async () => {
    const events: string[] = [];
    const notifier = new Notifier(
      store,
      recordingBus((titles) => events.push(`publish ${titles.join(',')}`)),
    );
    const send = (title: string) =>
      notifier.transact(async (trx, emit) => {
        events.push(`work ${title}`);
        await sql`SELECT ${title}::text`.execute(trx);
        events.push(`ran ${title}`);
        await emit([{ userId, type: 'test', title, unread: 1 }]);
      }, 'g');
    await Promise.all([send('g1'), send('g2'), send('g3')]);
    // The next message's work had started (its statement sent) before the previous one's
    // notifications were published.
    expect(events.indexOf('work g2')).toBeLessThan(events.indexOf('publish g1'));
    expect(events.indexOf('work g3')).toBeLessThan(events.indexOf('publish g2'));
    expect(events.filter((e) => e.startsWith('publish'))).toEqual(['publish g1', 'publish g2', 'publish g3']);
    const titles = (await readFeed(store.db, userId, 0, 20)).map((n) => n.title);
    expect(titles.filter((t) => t.startsWith('g'))).toEqual(['g1', 'g2', 'g3']);
    await notifier.close();
  });
});
