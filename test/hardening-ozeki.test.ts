import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachStore, SQLITE } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { ozekiTime } from '../client/ozeki.ts';
import { AVAILABILITY_STATES } from '../src/chat/availability.ts';
import { MAX_BLOCKLIST_ENTRIES } from '../src/chat/blocks.ts';

describeEachStore('the Ozeki API takes fields only as the README types them', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let conversationId: string;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    carol = await addUser(server, 'Carol');
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'first', 'ZGF0YQ==');
  });
  afterAll(async () => server?.stop());

  /** Posts a call and checks the ERROR shape, the status, and that nothing changed. */
  async function refused(query: string, fields: Record<string, unknown>, expected: { status: number; message: RegExp }, who = alice) {
    const before = await snapshot(server.app.parts.store);
    const response = await fetch(`${server.http}/?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ozeki-station': who.client.station },
      body: JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), ...fields }),
    });
    expect({ status: response.status, body: await response.json() }).toEqual({
      status: expected.status,
      body: { status: 'ERROR', errormessage: expect.stringMatching(expected.message) },
    });
    expect(await snapshot(server.app.parts.store)).toEqual(before);
  }
  const api = (name: string) => `srv=chatserver&api=${name}`;
  const message = { ID: 'as-object', Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: 'eA==' };

  it('a message sent as an object instead of a JSON string is refused and not stored', async () => {
    await refused(
      api('chatconversation'),
      { action: 'add', conversationid: conversationId, instance: '', message },
      {
        status: 400,
        message: /^message must be a JSON string of \{ID, Type, Created, ValidUntil, Data\}$/,
      },
    );
    await refused(
      api('chatconversation'),
      { action: 'add', conversationid: conversationId, instance: '' },
      {
        status: 400,
        message: /^message is missing$/,
      },
    );
  });

  it('a limit written as text is not a whole number', async () => {
    for (const limit of ['2', 2.5, true]) {
      await refused(
        api('chatconversation'),
        { action: 'downloadpartial', conversationid: conversationId, limit },
        {
          status: 400,
          message: /^limit must be a whole number from 1 to 1000$/,
        },
      );
    }
    const taken = await alice.client.ok('chatconversation', { action: 'downloadpartial', conversationid: conversationId, limit: 1 });
    expect((taken.messages as unknown[]).length).toBe(1);
  });

  it('a viewed or delivered report without its messageids is refused and no report is stored', async () => {
    for (const action of ['viewed', 'delivered']) {
      await refused(
        api('chatreports'),
        { action, conversationid: conversationId, instance: '' },
        {
          status: 400,
          message: /^messageids is missing$/,
        },
      );
    }
    expect((await alice.client.ok('chatreports', { action: 'viewed', conversationid: conversationId, messageids: [] })).status).toBe('OK');
  });

  it('a query without srv is refused', async () => {
    await refused('api=chatfriends', { action: 'list' }, { status: 400, message: /srv/ });
    await refused('srv=&api=chatfriends', { action: 'list' }, { status: 400, message: /srv/ });
  });

  it(`availability is one of ${AVAILABILITY_STATES.join(', ')}`, async () => {
    for (const action of ['userasleep', 'user', 'userAway', 'useroffline2']) {
      await refused(
        api('chatavailability'),
        { action },
        { status: 400, message: /unknown action .* \(useravailable, useronline, useraway/ },
      );
    }
    for (const state of AVAILABILITY_STATES)
      expect((await alice.client.ok('chatavailability', { action: `user${state}` })).status).toBe('OK');
    const row = await server.app.parts.store.db
      .selectFrom('users')
      .select('availability')
      .where('id', '=', alice.userid)
      .executeTakeFirst();
    expect(row?.availability).toBe(AVAILABILITY_STATES.at(-1));
  });

  it('blocking an unknown user or conversation is 404, one of others 403, and nothing is stored', async () => {
    await refused(api('chatblocklist'), { action: 'block', userid: '0'.repeat(32) }, { status: 404, message: /no such user/ });
    await refused(
      api('chatblocklist'),
      { action: 'block', conversationid: 'f'.repeat(32) },
      { status: 404, message: /no such conversation/ },
    );
    await refused(
      api('chatblocklist'),
      { action: 'block', conversationid: conversationId },
      { status: 403, message: /not a participant/ },
      carol,
    );
    const blocked = await alice.client.ok('chatblocklist', { action: 'block', conversationid: conversationId });
    expect(blocked.blockedconversations).toEqual([conversationId]);
    await alice.client.ok('chatblocklist', { action: 'unblock', conversationid: conversationId });
  });

  it(`a blocklist holds at most ${MAX_BLOCKLIST_ENTRIES} entries; the next block is 409 and stores nothing`, async () => {
    const db = server.app.parts.store.db;
    const rows = Array.from({ length: MAX_BLOCKLIST_ENTRIES }, (_, i) => ({
      user_id: carol.userid,
      blocked_user_id: null,
      blocked_conversation_id: randomBytes(16).toString('hex'),
      created_at: i,
    }));
    for (let i = 0; i < rows.length; i += 1000)
      await db
        .insertInto('blocks')
        .values(rows.slice(i, i + 1000))
        .execute();
    await refused(
      api('chatblocklist'),
      { action: 'block', userid: bob.userid },
      { status: 409, message: /blocklist is full \(10000 entries\)/ },
      carol,
    );
    // Blocking what is already blocked replaces it; after an unblock there is room again.
    const first = rows[0].blocked_conversation_id;
    await carol.client.ok('chatblocklist', { action: 'unblock', conversationid: first });
    const list = await carol.client.ok('chatblocklist', { action: 'block', userid: bob.userid });
    expect(list.blockedusers).toEqual([bob.userid]);
    expect((list.blockedconversations as string[]).length).toBe(MAX_BLOCKLIST_ENTRIES - 1);
  });

  it('an e-mail address with a control character is refused and no user is made', async () => {
    for (const email of ['eve\u0000@example.org', 'eve@exa\u0007mple.org', 'eve\u007f@example.org', 'eve@example.org\u0085x']) {
      const before = await snapshot(server.app.parts.store);
      const response = await fetch(`${server.http}/v1/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
        body: JSON.stringify({ email, name: 'Eve' }),
      });
      expect({ email, status: response.status, body: await response.json() }).toEqual({
        email,
        status: 400,
        body: { error: expect.stringMatching(/e-mail/) },
      });
      expect(await snapshot(server.app.parts.store)).toEqual(before);
    }
    const fine = await fetch(`${server.http}/v1/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ email: ' Eve@Example.org\n', name: 'Eve' }),
    });
    expect(fine.status).toBe(201);
  });
});

describe('every error answer under the Ozeki paths has the Ozeki shape', () => {
  let server: TestServer;
  const REQUEST_TIMEOUT_MS = 1000;

  beforeAll(async () => {
    server = await startTestServer(SQLITE, { HERALD_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
  });
  afterAll(async () => server?.stop());

  /** Sends raw bytes (and, optionally, stops there) and returns the status and JSON body of the answer. */
  async function rawAnswer(request: string): Promise<{ status: number; body: unknown }> {
    const socket = net.connect(Number(new URL(server.http).port), '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    const closed = new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.on('error', () => undefined);
    });
    try {
      socket.write(request);
      await closed;
    } finally {
      socket.destroy();
    }
    const text = answer.slice(answer.indexOf('\r\n\r\n') + 4);
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]), body: text ? JSON.parse(text) : undefined };
  }
  const ozekiShape = (message: RegExp) => ({ status: 'ERROR', errormessage: expect.stringMatching(message) });

  it('404 and 405', async () => {
    const missing = await fetch(`${server.http}/ozeki/nothing.php?srv=chatserver&api=chatfriends`, { method: 'POST' });
    expect({ status: missing.status, body: await missing.json() }).toEqual({ status: 404, body: ozekiShape(/no Ozeki Chat API endpoint/) });
    for (const path of ['/', '/index.php', '/ozeki/index.php']) {
      const wrong = await fetch(`${server.http}${path}?srv=chatserver&api=chatfriends`, { method: 'GET' });
      expect({ path, status: wrong.status, body: await wrong.json() }).toEqual({
        path,
        status: 405,
        body: ozekiShape(/takes OPTIONS, POST/),
      });
    }
  });

  it('408 for a body that trickles in, and for headers that never end', async () => {
    const trickle = 'POST /index.php?srv=chatserver&api=chatfriends HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"act';
    expect(await rawAnswer(trickle)).toEqual({ status: 408, body: ozekiShape(/within 1000 ms/) });
    expect(await rawAnswer('POST / HTTP/1.1\r\nHost: x\r\n')).toEqual({ status: 408, body: ozekiShape(/within 1000 ms/) });
    // Other APIs keep their own shape.
    expect(await rawAnswer('POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{')).toEqual({
      status: 408,
      body: { error: expect.stringMatching(/within 1000 ms/) },
    });
  });

  it('414 for a request line longer than the header limit', async () => {
    const long = 'a'.repeat(20_000);
    expect(await rawAnswer(`POST /?srv=chatserver&api=${long} HTTP/1.1\r\nHost: x\r\n\r\n`)).toEqual({
      status: 414,
      body: ozekiShape(/request line is longer than/),
    });
    expect(await rawAnswer(`GET /v1/users/${long} HTTP/1.1\r\nHost: x\r\n\r\n`)).toEqual({
      status: 414,
      body: { error: expect.stringMatching(/request line is longer than/) },
    });
  });

  it('431 for headers larger than the limit', async () => {
    const header = `X-Padding: ${'b'.repeat(20_000)}\r\n`;
    expect(await rawAnswer(`POST /ozeki/index.php?srv=chatserver&api=chatfriends HTTP/1.1\r\nHost: x\r\n${header}\r\n`)).toEqual({
      status: 431,
      body: ozekiShape(/headers are larger than/),
    });
  });

  it('400 for bytes that are not HTTP', async () => {
    expect(await rawAnswer('HELLO THERE\r\n\r\n')).toEqual({ status: 400, body: ozekiShape(/malformed HTTP request/) });
  });
});
