import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { ozekiTime } from '../client/ozeki.ts';
import { userKeyOf } from '../src/notify/feed.ts';

interface Entry {
  id: string;
  isgroup: boolean;
  participantids: string[];
  displayname: string;
  mutedby: string[];
  favoriteby: string[];
  hiddenby: string[];
  lastmessageid: string;
  properties: Array<{ userid: string; ismuted: boolean; isfavorite: boolean; hideid: string; listitembackgroundcolor: string }>;
}

describeEachStore('Ozeki conversations', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    carol = await addUser(server, 'Carol');
  });
  afterAll(async () => server?.stop());

  const unread = async (conversationId: string, userId: string) =>
    (
      await server.app.parts.store.db
        .selectFrom('participants')
        .select('unread_count')
        .where('conversation_id', '=', conversationId)
        .where('user_id', '=', userId)
        .executeTakeFirstOrThrow()
    ).unread_count;

  const messageIds = async (user: TestUser, conversationId: string) =>
    ((await user.client.download(conversationId)).messages as Array<{ ID: string }>).map((m) => m.ID);

  it('three users make a group, listed for every participant', async () => {
    const created = await alice.client.createConversation([bob.userid, carol.userid], { displayname: 'Project X' });
    const group = created.conversation as Entry;
    expect(group.isgroup).toBe(true);
    expect(group.id).toMatch(/^[0-9a-f]{32}$/);
    expect(group.displayname).toBe('Project X');
    expect([...group.participantids].sort()).toEqual([alice.userid, bob.userid, carol.userid].sort());
    const carolsList = (await carol.client.ok('chatconversation', { action: 'list' })).conversations as Entry[];
    expect(carolsList.map((c) => c.id)).toContain(group.id);
  });

  it('a retried add with the same message ID does not duplicate the message or the unread count', async () => {
    const { conversation } = await alice.client.createConversation([bob.userid]);
    const id = (conversation as Entry).id;
    await alice.client.addMessage(id, 'retry-me', 'b25jZQ==');
    const again = await alice.client.addMessage(id, 'retry-me', 'b25jZQ==');
    expect((again.message as { ID: string }).ID).toBe('retry-me');
    expect(await messageIds(bob, id)).toEqual(['retry-me']);
    expect(await unread(id, bob.userid)).toBe(1);
    await bob.client.viewed(id);
  });

  it('unread counts are kept per user per conversation and reset by viewed', async () => {
    const { conversation } = await alice.client.createConversation([bob.userid, carol.userid]);
    const id = (conversation as Entry).id;
    await alice.client.addMessage(id, 'g1', 'AQ==');
    await alice.client.addMessage(id, 'g2', 'Ag==');
    await bob.client.addMessage(id, 'g3', 'Aw==');
    expect(await unread(id, bob.userid)).toBe(2);
    expect(await unread(id, carol.userid)).toBe(3);
    expect(await unread(id, alice.userid)).toBe(1);
    await carol.client.viewed(id, ['g1', 'g2', 'g3']);
    expect(await unread(id, carol.userid)).toBe(0);
    expect(await unread(id, bob.userid)).toBe(2);
  });

  it("a blocked user's messages do not reach the blocker", async () => {
    const { conversation } = await carol.client.createConversation([alice.userid]);
    const id = (conversation as Entry).id;
    const blocked = await alice.client.ok('chatblocklist', { action: 'block', userid: carol.userid });
    expect(blocked.blockedusers).toEqual([carol.userid]);
    const before = await server.app.parts.store.db
      .selectFrom('notifications')
      .select('seq')
      .where('user_key', '=', userKeyOf(alice.userid))
      .execute();
    await carol.client.addMessage(id, 'spam', 'c3BhbQ==');
    expect(await unread(id, alice.userid)).toBe(0);
    expect(await messageIds(alice, id)).toEqual([]);
    const after = await server.app.parts.store.db
      .selectFrom('notifications')
      .select('seq')
      .where('user_key', '=', userKeyOf(alice.userid))
      .execute();
    expect(after.length).toBe(before.length);
    // Carol still sees her own message.
    expect(await messageIds(carol, id)).toEqual(['spam']);
    const unblocked = await alice.client.ok('chatblocklist', { action: 'unblock', userid: carol.userid });
    expect(unblocked.blockedusers).toEqual([]);
    const list = await alice.client.ok('chatblocklist', { action: 'blocklist' });
    expect(list).toMatchObject({ blockedusers: [], blockedconversations: [] });
  });

  it('list properties are per user and reported in the change feed', async () => {
    const { conversation } = await bob.client.createConversation([carol.userid]);
    const id = (conversation as Entry).id;
    const since = ozekiTime(new Date(Date.now() - 1000));
    let entry = (await bob.client.ok('chatconversation', { action: 'mute', conversationid: id })).conversation as Entry;
    expect(entry.mutedby).toEqual([bob.userid]);
    entry = (await bob.client.ok('chatconversation', { action: 'favorite', conversationid: id })).conversation as Entry;
    expect(entry.favoriteby).toEqual([bob.userid]);
    entry = (await bob.client.ok('chatconversation', { action: 'hide', conversationid: id, hideid: 'h1' })).conversation as Entry;
    expect(entry.hiddenby).toEqual([bob.userid]);
    entry = (await bob.client.ok('chatconversation', { action: 'setlistitembackgroundcolor', conversationid: id, color: '#ff0000' }))
      .conversation as Entry;
    expect(entry.properties.find((p) => p.userid === bob.userid)).toEqual({
      userid: bob.userid,
      ismuted: true,
      isfavorite: true,
      hideid: 'h1',
      listitembackgroundcolor: '#ff0000',
    });
    entry = (await bob.client.ok('chatconversation', { action: 'unhide', conversationid: id })).conversation as Entry;
    expect(entry.hiddenby).toEqual([]);
    await bob.client.ok('chatconversation', { action: 'unmute', conversationid: id });
    entry = (await bob.client.ok('chatconversation', { action: 'unfavorite', conversationid: id })).conversation as Entry;
    expect(entry.mutedby).toEqual([]);
    expect(entry.favoriteby).toEqual([]);
    const changes = await bob.client.changesSince(since);
    expect(changes.conversationlistchangedof).toContain(id);
  });

  it('clear empties the conversation for the caller only and resets their unread count', async () => {
    const { conversation } = await alice.client.createConversation([bob.userid]);
    const id = (conversation as Entry).id;
    await alice.client.addMessage(id, 'c1', 'AQ==');
    await alice.client.addMessage(id, 'c2', 'Ag==');
    await bob.client.ok('chatconversation', { action: 'clear', conversationid: id });
    expect(await unread(id, bob.userid)).toBe(0);
    expect(await messageIds(bob, id)).toEqual([]);
    expect(await messageIds(alice, id)).toContain('c2');
    await alice.client.addMessage(id, 'c3', 'Aw==');
    expect(await messageIds(bob, id)).toEqual(['c3']);
  });

  it('downloadpartial pages through messages after the last one the client has', async () => {
    const dave = await addUser(server, 'Dave');
    const { conversation } = await alice.client.createConversation([dave.userid]);
    const id = (conversation as Entry).id;
    for (let i = 1; i <= 5; i++) await alice.client.addMessage(id, `p${i}`, 'AA==');
    const first = await dave.client.ok('chatconversation', { action: 'downloadpartial', conversationid: id, limit: 2 });
    expect((first.messages as Array<{ ID: string }>).map((m) => m.ID)).toEqual(['p1', 'p2']);
    const next = await dave.client.ok('chatconversation', {
      action: 'downloadpartial',
      conversationid: id,
      firstmessageid: 'p2',
      lastmessageid: 'p4',
      limit: 50,
    });
    expect((next.messages as Array<{ ID: string }>).map((m) => m.ID)).toEqual(['p3', 'p4']);
    const bad = await dave.client.call('chatconversation', { action: 'downloadpartial', conversationid: id, limit: 0 });
    expect(bad.httpStatus).toBe(400);
    expect(bad.body.errormessage).toMatch(/limit must be a whole number/);
  });

  it("a friend's availability change is listed by chatnotification", async () => {
    await befriend(server, alice, carol);
    const since = ozekiTime(new Date(Date.now() - 1000));
    await alice.client.ok('chatavailability', { action: 'userbusy' });
    const changes = await carol.client.changesSince(since);
    expect(changes.friendavailabilitesof).toEqual([alice.userid]);
    const friends = await carol.client.ok('chatfriends', { action: 'list' });
    expect(friends.availabilities).toEqual([{ friendid: alice.userid, friendname: 'Alice', publickey: '', availability: 'busy' }]);
    // Bob is not Alice's friend: he is not told.
    const bobs = await bob.client.changesSince(since);
    expect(bobs.friendavailabilitesof).toEqual([]);
  });

  it('a conversation id does not depend on who starts it', async () => {
    const a = (await alice.client.createConversation([carol.userid])).conversation as Entry;
    const c = (await carol.client.createConversation([alice.userid])).conversation as Entry;
    expect(a.id).toBe(c.id);
    expect(a.isgroup).toBe(false);
  });
});
