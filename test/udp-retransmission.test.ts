import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { listen, metric } from './helpers/udp.ts';
import { DatagramType } from '../client/udp-protocol.ts';
import { readFeed } from '../src/notify/feed.ts';
import type { UdpFrame } from '../client/udp-receiver.ts';

/** Loses the first `count` datagrams of one type, as a bad network would. */
function loseFirst(count: number, type: number) {
  let lost = 0;
  return (bytes: Buffer) => bytes[2] === type && lost++ < count;
}

describeEachStore('UDP retransmission', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let conversationId: string;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'windows');
    await befriend(server, alice, bob);
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
  });
  afterAll(async () => server?.stop());

  /** Alice writes, Bob reads; resolves with what the feed says Bob should have received. */
  async function messageAndRead(id: string, frames: UdpFrame[], after: number) {
    await alice.client.addMessage(conversationId, id, 'aGk=');
    await waitFor(() => frames.some((f) => f.kind === 'message' && f.conversationid === conversationId), 10_000, 'the message');
    await bob.client.viewed(conversationId, [id]);
    await waitFor(() => frames.some((f) => f.type === 'clean'), 10_000, 'the clean push');
    // Nothing is left unacknowledged: any copy the server sent again has arrived by now.
    await waitFor(async () => (await metric(server, 'herald_udp_pending')) === 0, 10_000, 'every push acknowledged');
    return (await readFeed(server.app.parts.store.db, bob.userid, after)).map((n) => n.seq);
  }

  it('with the first 3 datagrams lost, Bob still receives everything exactly once', async () => {
    const retransmitsBefore = await metric(server, 'herald_udp_retransmits_total');
    const { receiver, frames } = await listen(bob, { dropIncoming: loseFirst(3, DatagramType.push) });
    try {
      const expected = await messageAndRead('lost-1', frames, receiver.lastSeq);
      expect(receiver.stats.lost).toBe(3);
      expect(frames.map((f) => f.seq)).toEqual(expected);
      expect(await metric(server, 'herald_udp_retransmits_total')).toBeGreaterThanOrEqual(retransmitsBefore + 3);
    } finally {
      await receiver.close();
    }
  });

  it('when its acknowledgements are lost, the copies sent again are recognised and handed on once', async () => {
    const { receiver, frames } = await listen(bob, { dropOutgoing: loseFirst(3, DatagramType.ack) });
    try {
      const expected = await messageAndRead('lost-2', frames, receiver.lastSeq);
      expect(receiver.stats.duplicates).toBeGreaterThanOrEqual(1);
      expect(frames.map((f) => f.seq)).toEqual(expected);
    } finally {
      await receiver.close();
    }
  });
});
