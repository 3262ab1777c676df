import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../src/store/db.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { recordingBus } from './helpers/recording-bus.ts';
import { createUser } from '../src/chat/users.ts';
import { readFeed } from '../src/notify/feed.ts';
import { SQLITE } from './helpers/stores.ts';

/** Keeps the thread busy for `ms`, as a message's own statements do. */
function work(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('group commit on SQLite when many messages wait', () => {
  let store: Store;
  let userId: string;

  beforeAll(async () => {
    store = await SQLITE.open();
    userId = (await createUser(store.db, store.secrets, { email: 'cut@example.org', name: 'Cut' })).userid;
  });
  afterAll(async () => store?.close());

  it("the first messages' notifications go out before the last queued ones are written, all in order", async () => {
    const events: string[] = [];
    const notifier = new Notifier(
      store,
      recordingBus((titles) => events.push(`publish ${titles.join(',')}`)),
    );
    const send = (title: string) =>
      notifier.transact(async (_trx, emit) => {
        events.push(`work ${title}`);
        work(0.6);
        await emit([{ userId, type: 'test', title, unread: 1 }]);
      });
    // Eight messages waiting at once (after a stall, say): one transaction would write all
    // eight before the first one's frame could go out.
    const titles = Array.from({ length: 8 }, (_, i) => `m${i}`);
    await Promise.all(titles.map(send));
    const firstPublished = events.findIndex((e) => e.startsWith('publish') && e.split(' ')[1].split(',').includes('m0'));
    expect(firstPublished).toBeGreaterThan(-1);
    expect(firstPublished).toBeLessThan(events.indexOf('work m7'));
    // Every message once, in the order sent, each in one publication.
    const published = events.filter((e) => e.startsWith('publish')).flatMap((e) => e.split(' ')[1].split(','));
    expect(published).toEqual(titles);
    const feed = await readFeed(store.db, userId, 0, 20);
    expect(feed.map((n) => n.title)).toEqual(titles);
    expect(feed.map((n) => n.seq)).toEqual(titles.map((_, i) => i + 1));
    await notifier.close();
  });

  it('messages of one conversation stay in one transaction, so their frames share the writes', async () => {
    const published: string[][] = [];
    const notifier = new Notifier(
      store,
      recordingBus((titles) => published.push(titles)),
    );
    const send = (title: string) =>
      notifier.transact(async (_trx, emit) => {
        work(0.6);
        await emit([{ userId, type: 'test', title, unread: 1 }]);
      }, 'conversation-1');
    // Eight at once, ~5 ms of work together: past the cut's 1 ms, but all of one conversation.
    const titles = Array.from({ length: 8 }, (_, i) => `c${i}`);
    await Promise.all(titles.map(send));
    expect(published.flat()).toEqual(titles);
    expect(published.length).toBeLessThanOrEqual(2);
    await notifier.close();
  });
});
