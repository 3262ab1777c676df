import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../src/store/db.ts';
import { Notifier } from '../src/notify/notifier.ts';
import type { Silencer } from '../src/notify/preferences.ts';
import { recordingBus } from './helpers/recording-bus.ts';
import { createUser } from '../src/chat/users.ts';
import { sendNotifications } from '../src/chat/sends.ts';
import { readFeed } from '../src/notify/feed.ts';
import { SQLITE } from './helpers/stores.ts';

/** Keeps the thread busy for `ms`, as a send to a large audience does. */
function work(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** Silences nothing, but takes a while over each send's first recipient: each send is past the 1 ms cut. */
const slowSilencer: Silencer = {
  silences(userId) {
    if (userId === firstRecipient) work(1.5);
    return undefined;
  },
};
let firstRecipient = '';

describe('gateway sends on SQLite when many wait', () => {
  let store: Store;
  let users: string[];

  beforeAll(async () => {
    store = await SQLITE.open();
    users = [];
    for (let i = 0; i < 3; i++) {
      users.push((await createUser(store.db, store.secrets, { email: `batch${i}@example.org`, name: `Batch ${i}` })).userid);
    }
    firstRecipient = users[0];
  });
  afterAll(async () => store?.close());

  it('sends to one thread stay in one transaction, so their frames share the writes', async () => {
    const published: string[][] = [];
    const notifier = new Notifier(
      store,
      recordingBus((titles) => published.push(titles)),
      undefined,
      slowSilencer,
    );
    // Six at once, ~9 ms of work together: past the cut's 1 ms, but all to one thread.
    const titles = Array.from({ length: 6 }, (_, i) => `invoice ${i}`);
    await Promise.all(titles.map((title) => sendNotifications(notifier, { to: users, title, conversationId: 'billing' })));
    // Each publication carries every recipient's notification of each of its sends.
    expect(published.flat().filter((_, i) => i % users.length === 0)).toEqual(titles);
    expect(published.length).toBeLessThanOrEqual(2);
    const feed = await readFeed(store.db, users[2], 0, 20);
    expect(feed.map((n) => n.title)).toEqual(titles);
    await notifier.close();
  });

  it('sends to different threads are still cut, the first ones published before the last are written', async () => {
    const published: string[][] = [];
    const notifier = new Notifier(
      store,
      recordingBus((titles) => published.push(titles)),
      undefined,
      slowSilencer,
    );
    const titles = Array.from({ length: 4 }, (_, i) => `reminder ${i}`);
    await Promise.all(titles.map((title, i) => sendNotifications(notifier, { to: users, title, conversationId: `thread-${i}` })));
    expect(published.length).toBe(titles.length);
    expect(published.map((titles) => titles[0])).toEqual(titles);
    await notifier.close();
  });
});
