import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from './helpers/stores.ts';
import { waitFor } from './helpers/server.ts';
import { RedisBus } from '../src/cluster/redis-bus.ts';
import type { Notification } from '../src/model/notification.ts';

if (!TEST_REDIS_URL) console.warn('HERALD_TEST_REDIS_URL is unset: the Redis bus message tests are skipped');

/** A notification whose texts hold what the line format must carry through: tabs, line breaks, quotes, emoji. */
function notification(userId: string, seq: number): Notification {
  return {
    id: randomUUID(),
    userId,
    seq,
    type: 'message',
    conversationId: seq % 2 ? null : `conv-${seq}`,
    senderId: 'sender "x"\t1',
    title: `2 messages from Ålice 🦊\nline two\tand a tab`,
    body: 'back\\slash',
    badge: seq,
    silent: seq % 2 === 0,
    data: { nested: { list: [1, 'two\n', null] }, empty: '' },
    createdAt: 1_700_000_000_000 + seq,
    ...(seq === 2 && { push: { ttl: 60, priority: 'high' } }),
  } as Notification;
}

describe.skipIf(!TEST_REDIS_URL)('the Redis bus, message by message', () => {
  let a: RedisBus, b: RedisBus, c: RedisBus;
  let raw: Redis;
  // Users of this test only: other tests' nodes may share the channel.
  const run = randomUUID().slice(0, 8);
  const bob = `bob-${run}`;
  const carol = `carol "${run}"\t\\`;
  const received = { a: [] as Notification[], b: [] as Notification[], c: [] as Notification[] };
  const ours = (list: Notification[]) => list.filter((n) => n.userId === bob || n.userId === carol || n.userId.endsWith(run));

  beforeAll(async () => {
    [a, b, c] = await Promise.all([
      RedisBus.connect(TEST_REDIS_URL!),
      RedisBus.connect(TEST_REDIS_URL!),
      RedisBus.connect(TEST_REDIS_URL!),
    ]);
    raw = new Redis(TEST_REDIS_URL!);
    a.subscribe(
      (list) => received.a.push(...ours(list)),
      (userId) => userId.endsWith(run),
    );
    // Node B holds only Bob's devices; node C has a watcher of everything.
    b.subscribe(
      (list) => received.b.push(...ours(list)),
      (userId) => userId === bob,
    );
    c.subscribe((list) => received.c.push(...ours(list)));
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    raw?.disconnect();
  });

  it('carries every field through, reads on each node only the users it wants, and skips its own', async () => {
    const sent = [notification(bob, 1), notification(carol, 2), notification(bob, 3)];
    await a.publish(sent);
    // The publishing node's own subscribers have them at once, in process.
    expect(received.a).toEqual(sent);
    await waitFor(() => received.c.length === 3, 5000, 'the three notifications on node C');
    expect(received.c).toEqual(sent);
    await waitFor(() => received.b.length === 2, 5000, "Bob's two notifications on node B");
    expect(received.b).toEqual([sent[0], sent[2]]);

    // Node A's own message came back from Redis before this later one of node B's: A heard
    // B's, and still holds its own once.
    const marker = notification(`dave-${run}`, 1);
    await b.publish([marker]);
    await waitFor(() => received.a.length === 4, 5000, "node B's notification on node A");
    expect(received.a).toEqual([...sent, marker]);
    // Node B's own subscribers had its marker in process, as node A's had its three.
    expect(received.b).toEqual([sent[0], sent[2], marker]);
  });

  it('still reads a message in the earlier format, a body array', async () => {
    const earlier = notification(bob, 9);
    const before = received.c.length;
    await raw.publish('herald:notifications', JSON.stringify({ node: `earlier-${run}`, seq: 1, body: [earlier] }));
    await waitFor(() => received.c.length > before, 5000, 'the earlier-format message on node C');
    expect(received.c.at(-1)).toEqual(earlier);
  });

  it('leaves out a line it cannot read and keeps the others', async () => {
    const good = notification(bob, 10);
    const before = received.c.length;
    const text = `{"node":"broken-${run}","seq":1}\n${JSON.stringify(bob)}\t{not json\n${JSON.stringify(bob)}\t${JSON.stringify(good)}`;
    await raw.publish('herald:notifications', text);
    await waitFor(() => received.c.length > before, 5000, 'the readable line on node C');
    expect(received.c.slice(before)).toEqual([good]);
  });
});
