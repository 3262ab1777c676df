import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, befriend, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { addPushDevice } from './helpers/push.ts';
import { connectDevice } from './helpers/websocket.ts';
import { createApiToken } from '../src/chat/api-tokens.ts';
import type { Database } from '../src/store/schema.ts';

/*
 * What the rest of the system still says about a user, read from the database's own
 * catalogue: every text column of every table holding the user id, and every `user_key`
 * column holding the user's key. A table added later is searched without changing this file.
 */
async function mentionsOf(db: Kysely<Database>, userId: string, userKey: number): Promise<Record<string, number>> {
  const any = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
  const schema = (await sql<{ name: string | null }>`SELECT current_schema() AS name`.execute(db).catch(() => ({ rows: [] }))).rows[0]
    ?.name;
  const tables = (await db.introspection.getTables()).filter((t) => !schema || t.schema === schema);
  const found: Record<string, number> = {};
  for (const table of tables) {
    for (const column of table.columns) {
      let value: string | number;
      if (column.name === 'user_key') value = userKey;
      else if (/char|text/i.test(column.dataType)) value = userId;
      else continue;
      const row = await any
        .selectFrom(table.name)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where(column.name, '=', value)
        .executeTakeFirstOrThrow();
      if (Number(row.n) > 0) found[`${table.name}.${column.name}`] = Number(row.n);
    }
  }
  return found;
}

/** Where a deleted user's id may stay: the messages they sent and the conversations they began, kept for the others. */
const KEPT_FOR_OTHERS = ['conversations.created_by', 'messages.sender_id', 'notifications.sender_id'];

describeEachStore('deleting a user', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    carol = await addUser(server, 'Carol');
  });
  afterAll(async () => server?.stop());

  /** Gives Alice a row in every table that can hold something of hers. */
  async function fillAlicesWorld(): Promise<{ shared: string; alone: string }> {
    const db = server.app.parts.store.db;
    await befriend(server, alice, bob);
    await befriend(server, carol, alice);
    await addPushDevice(server, alice, 'ios', 'ab'.repeat(32));
    const shared = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
    await alice.client.addMessage(shared, 'from-alice', 'x');
    await bob.client.addMessage(shared, 'from-bob', 'y');
    await alice.client.viewed(shared, ['from-bob']);
    const alone = ((await alice.client.createConversation([carol.userid])).conversation as { id: string }).id;
    await db.deleteFrom('participants').where('conversation_id', '=', alone).where('user_id', '=', carol.userid).execute();

    const sent = await fetch(`${server.http}/v1/notifications`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ to: [alice.email], title: 'Invoice 42', conversationid: 'invoices' }),
    });
    expect(sent.status).toBe(202);
    const preferences = await fetch(`${server.http}/v1/users/${alice.userid}/preferences`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ dnduntil: Date.now() + 3_600_000, conversationmutes: { invoices: Date.now() + 3_600_000 } }),
    });
    expect(preferences.status).toBe(200);

    const now = Date.now();
    await db
      .insertInto('blocks')
      .values([
        { user_id: alice.userid, blocked_user_id: carol.userid, blocked_conversation_id: null, created_at: now },
        { user_id: bob.userid, blocked_user_id: alice.userid, blocked_conversation_id: null, created_at: now },
      ])
      .execute();
    await db
      .insertInto('web3mq_accounts')
      .values({
        user_id: alice.userid,
        did_type: 'herald',
        did_value: alice.userid,
        main_pubkey: 'a1'.repeat(32),
        pubkey_type: 'ed25519',
        created_at: now,
      })
      .execute();
    await db
      .insertInto('web3mq_login_keys')
      .values({ pubkey: 'b2'.repeat(32), user_id: alice.userid, expires_at: now + 60_000, created_at: now })
      .execute();
    await db
      .insertInto('web3mq_friend_requests')
      .values([
        { requester_id: alice.userid, target_id: carol.userid, content: 'hi', created_at: now },
        { requester_id: bob.userid, target_id: alice.userid, content: 'hello', created_at: now },
      ])
      .execute();
    await db
      .insertInto('web3mq_group_members')
      .values([
        { group_id: 'group:1', user_id: alice.userid, invited_by: null, created_at: now },
        { group_id: 'group:1', user_id: bob.userid, invited_by: alice.userid, created_at: now },
      ])
      .execute();
    await db.insertInto('web3mq_topics').values({ id: 'topic:alice', owner_id: alice.userid, name: 'news', created_at: now }).execute();
    await db
      .insertInto('web3mq_subscriptions')
      .values([
        { topic_id: 'topic:alice', user_id: bob.userid, created_at: now },
        { topic_id: 'topic:alice', user_id: alice.userid, created_at: now },
      ])
      .execute();
    return { shared, alone };
  }

  it('DELETE /v1/users/:id leaves nothing of the user, closes their live connections and keeps the others whole', async () => {
    const db = server.app.parts.store.db;
    const { shared, alone } = await fillAlicesWorld();
    const { key } = await db.selectFrom('users').select('key').where('id', '=', alice.userid).executeTakeFirstOrThrow();

    // Every table with a user column holds something of Alice's, so the check below can fail.
    const before = await mentionsOf(db, alice.userid, key);
    const tables = await db.introspection.getTables();
    const userTables = tables.filter((t) => t.columns.some((c) => c.name === 'user_id')).map((t) => t.name);
    for (const table of userTables) expect(Object.keys(before), `a row of Alice in ${table}`).toContain(`${table}.user_id`);
    expect(before['notifications.user_key']).toBeGreaterThan(0);

    const live = await connectDevice(server, alice.client.station);
    try {
      const refused = live.receiver.next('refused');
      const response = await fetch(`${server.http}/v1/users/${encodeURIComponent(alice.email)}`, {
        method: 'DELETE',
        headers: { authorization: admin.authorization },
      });
      expect(response.status).toBe(204);
      expect(await refused).toEqual({ code: 4401, reason: 'this user was deleted' });
    } finally {
      live.receiver.close();
    }

    const after = await mentionsOf(db, alice.userid, key);
    expect(Object.keys(after).filter((place) => !KEPT_FOR_OTHERS.includes(place))).toEqual([]);

    // Bob keeps the conversation, Alice's message in it, his friendship with Carol's world, his feed.
    const participants = await db.selectFrom('participants').select('user_id').where('conversation_id', '=', shared).execute();
    expect(participants.map((p) => p.user_id)).toEqual([bob.userid]);
    const messages = await db.selectFrom('messages').select('id').where('conversation_id', '=', shared).orderBy('seq').execute();
    expect(messages.map((m) => m.id)).toEqual(['from-alice', 'from-bob']);
    expect(await db.selectFrom('conversations').select('id').where('id', '=', alone).execute()).toEqual([]);
    expect(await db.selectFrom('web3mq_group_members').select(['user_id', 'invited_by']).execute()).toEqual([
      { user_id: bob.userid, invited_by: null },
    ]);
    const bobsFeed = await fetch(`${server.http}/v1/users/${bob.userid}/notifications`, { headers: admin });
    expect(((await bobsFeed.json()) as { notifications: unknown[] }).notifications.length).toBeGreaterThan(0);

    // Her old station is a stranger now, and her e-mail address can be used again.
    expect((await alice.client.call('chatconversation', { action: 'list' })).httpStatus).toBe(401);
    const again = await fetch(`${server.http}/v1/users`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ email: alice.email, name: 'Alice' }),
    });
    expect(again.status).toBe(201);
  }, 60_000);

  it('refuses an unknown user with 404, a missing credential with 401 and a token without users:write with 403', async () => {
    const unknown = await fetch(`${server.http}/v1/users/nobody@example.org`, { method: 'DELETE', headers: admin });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: 'no such user: nobody@example.org' });
    const anonymous = await fetch(`${server.http}/v1/users/${carol.userid}`, { method: 'DELETE' });
    expect(anonymous.status).toBe(401);
    const reader = await createApiToken(server.app.parts.store.db, { name: 'reader', scopes: ['users:read'] });
    const weak = await fetch(`${server.http}/v1/users/${carol.userid}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${reader.token}` },
    });
    expect(weak.status).toBe(403);
    expect(((await weak.json()) as { error: string }).error).toMatch(/users:write/);
    // Carol is still there: her station still works.
    expect((await carol.client.call('chatconversation', { action: 'list' })).httpStatus).toBe(200);
  });

  it('DELETE /v1/users/:id/friends/:friend ends a friendship both ways, and says so when there was none', async () => {
    const dave = await addUser(server, 'Dave');
    await befriend(server, bob, dave);
    const path = `${server.http}/v1/users/${bob.email}/friends/${dave.userid}`;
    const ended = await fetch(path, { method: 'DELETE', headers: admin });
    expect(ended.status).toBe(204);
    const rows = await server.app.parts.store.db
      .selectFrom('friendships')
      .selectAll()
      .where((eb) => eb.or([eb('user_id', '=', dave.userid), eb('friend_id', '=', dave.userid)]))
      .execute();
    expect(rows).toEqual([]);
    const again = await fetch(path, { method: 'DELETE', headers: admin });
    expect(again.status).toBe(404);
    expect(await again.json()).toEqual({ error: `${bob.userid} and ${dave.userid} are not friends` });
  });
});
