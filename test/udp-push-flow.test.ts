import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { listen, udpCredentials, udpPort } from './helpers/udp.ts';

describeEachStore('UDP push to a desktop client', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'windows');
    await befriend(server, alice, bob);
  });
  afterAll(async () => server?.stop());

  it("chatlogin's listeners.udp points to the UDP listener and hands out a 32-byte secret", async () => {
    const credentials = await udpCredentials(bob);
    expect(credentials.endpoint).toMatch(/^udp:\/\/127\.0\.0\.1:\d+$/);
    expect(udpPort(credentials.endpoint)).toBeGreaterThan(0);
    expect(credentials.secret).toMatch(/^[0-9a-f]{64}$/);
  });

  it("Bob's desktop receives Alice's message and then the clean push when he has read it", async () => {
    const { receiver, frames } = await listen(bob);
    try {
      const created = await alice.client.createConversation([bob.userid]);
      const conversationId = (created.conversation as { id: string }).id;
      await alice.client.addMessage(conversationId, 'udp-msg-1', 'aGVsbG8=');

      const message = await waitFor(
        () => frames.find((f) => f.type === 'notification' && f.kind === 'message'),
        5000,
        "Alice's message over UDP",
      );
      expect(message).toMatchObject({ conversationid: conversationId, sender: alice.userid, badge: 1, silent: false });
      expect(message.title).toContain('Alice');

      await bob.client.viewed(conversationId, ['udp-msg-1']);
      const clean = await waitFor(() => frames.find((f) => f.type === 'clean'), 5000, 'the clean push over UDP');
      expect(clean).toMatchObject({ conversationid: conversationId, badge: 0 });
      expect(clean.seq).toBeGreaterThan(message.seq);

      // Every frame is handed on once, in the order of the feed.
      const seqs = frames.map((f) => f.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

      // The acknowledgements reach the device record.
      await waitFor(
        async () => {
          const device = await server.app.parts.store.db
            .selectFrom('devices')
            .select('acked_seq')
            .where('station', '=', bob.client.station)
            .executeTakeFirstOrThrow();
          return device.acked_seq >= clean.seq;
        },
        5000,
        "Bob's acked sequence to be recorded",
      );
    } finally {
      await receiver.close();
    }
  });
});
