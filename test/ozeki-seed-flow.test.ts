import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { ozekiTime } from '../client/ozeki.ts';

describeEachStore('the Ozeki seed flow', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    await befriend(server, alice, bob);
  });
  afterAll(async () => server?.stop());

  it('Alice sends, Bob is told, downloads byte for byte, reads, and the feed is quiet again', async () => {
    const before = ozekiTime(new Date(Date.now() - 1000));
    const friends = await bob.client.ok('chatfriends', { action: 'list' });
    expect(friends.friends).toEqual({ [alice.userid]: 'Alice' });

    const created = await alice.client.createConversation([bob.userid]);
    const conversation = created.conversation as { id: string; isgroup: boolean; participantids: string[] };
    expect(conversation.isgroup).toBe(false);
    expect(conversation.participantids.sort()).toEqual([alice.userid, bob.userid].sort());
    // Bob starting the same one-to-one conversation gets the same one.
    const again = await bob.client.createConversation([alice.userid]);
    expect((again.conversation as { id: string }).id).toBe(conversation.id);

    const data = 'aGVsbG8gQm9i/+==  \u00e9\u{1F600}';
    await alice.client.addMessage(conversation.id, 'msg-1', data);

    const changes = await bob.client.changesSince(before);
    expect(changes.conversationchangedof).toEqual([conversation.id]);

    const download = await bob.client.download(conversation.id);
    const messages = download.messages as Array<{ ID: string; Data: string }>;
    expect(messages.map((m) => m.ID)).toEqual(['msg-1']);
    expect(messages[0].Data).toBe(data);

    const unreadBefore = await server.app.parts.store.db
      .selectFrom('participants')
      .select('unread_count')
      .where('conversation_id', '=', conversation.id)
      .where('user_id', '=', bob.userid)
      .executeTakeFirstOrThrow();
    expect(unreadBefore.unread_count).toBe(1);

    await bob.client.viewed(conversation.id, ['msg-1']);
    const unreadAfter = await server.app.parts.store.db
      .selectFrom('participants')
      .select('unread_count')
      .where('conversation_id', '=', conversation.id)
      .where('user_id', '=', bob.userid)
      .executeTakeFirstOrThrow();
    expect(unreadAfter.unread_count).toBe(0);

    const later = await bob.client.changesSince(ozekiTime(new Date(Date.now() + 2000)));
    expect(later.conversationchangedof).toEqual([]);
    expect(later.conversationlistchangedof).toEqual([]);
    expect(later.friendavailabilitesof).toEqual([]);
  });
});
