import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import type { Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { createUser } from '../src/chat/users.ts';
import { readFeed } from '../src/notify/feed.ts';

describeEachStore('texts in the feed', (kind) => {
  let store: Store;
  const users: string[] = [];

  beforeAll(async () => {
    store = await kind.open();
    for (const name of ['dan', 'eve']) {
      users.push((await createUser(store.db, store.secrets, { email: `${name}@example.org`, name })).userid);
    }
  });
  afterAll(async () => store?.close());

  it('a notification reads back exactly as written: quotes, backslashes, braces, commas, NULL and emoji', async () => {
    const notifier = new Notifier(store, new LocalBus());
    const titles = ['say "hi"', 'C:\\path\\', '{a,b}', 'NULL', '', 'x, y', 'line\nbreak', 'tea 🍵'];
    await notifier.transact(async (_trx, emit) => {
      await emit(
        titles.flatMap((title, i) =>
          users.map((userId) => ({
            userId,
            type: 'test' as const,
            title,
            body: `${title}\\"`,
            conversationId: i % 2 ? null : `c"${i}`,
            data: { title, i },
            unread: 1,
          })),
        ),
      );
    });
    for (const userId of users) {
      const feed = await readFeed(store.db, userId, 0, 100);
      expect(feed.map((n) => [n.title, n.body, n.conversationId, n.data])).toEqual(
        titles.map((title, i) => [title, `${title}\\"`, i % 2 ? null : `c"${i}`, { title, i }]),
      );
    }
    await notifier.close();
  });
});
