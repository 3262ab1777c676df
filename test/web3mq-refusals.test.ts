import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { RawWeb3mqUser, newEd25519Key, post, web3mqSnapshot, type Reply } from './helpers/web3mq.ts';

describeEachStore('refused Web3MQ calls change nothing, on $name', (kind) => {
  let server: TestServer;
  let alice: RawWeb3mqUser;
  let bob: RawWeb3mqUser;
  let requestId: string;
  let before: Awaited<ReturnType<typeof web3mqSnapshot>>;

  beforeAll(async () => {
    // This file makes dozens of refused calls from one address on purpose: the login limit,
    // which slows that down (test/rate-limits-logins.test.ts), would answer them 429 instead.
    server = await startTestServer(kind, { HERALD_LIMIT_LOGIN: 'off' });
    alice = await new RawWeb3mqUser(server.http).registerAndLogin();
    bob = await new RawWeb3mqUser(server.http).registerAndLogin();
    const sent = await bob.signedPost('/api/contacts/add_friends/', { target_userid: alice.userid, content: 'hi' }, [alice.userid, 'hi']);
    expect(sent.body).toEqual({ code: 0, msg: 'ok' });
    const history = await alice.history({});
    requestId = history.body.data.result[0].messageid;
  });
  afterAll(async () => server?.stop());
  beforeEach(async () => {
    before = await web3mqSnapshot(server.app.parts.store);
  });

  async function expectRefused(reply: Reply, status: number, message: RegExp) {
    expect(reply.status).toBe(status);
    expect(reply.body.code).toBe(status);
    expect(reply.body.msg).toMatch(message);
    expect(reply.body.data).toBeUndefined();
    expect(await web3mqSnapshot(server.app.parts.store)).toEqual(before);
  }

  it('a signature made with another key is refused as a bad signature', async () => {
    const stranger = newEd25519Key();
    const timestamp = Date.now();
    const reply = await post(
      server.http,
      '/api/notification/status/',
      {
        userid: alice.userid,
        messages: [requestId],
        status: 'read',
        timestamp,
        web3mq_signature: stranger.sign(alice.userid + 'read' + timestamp),
      },
      alice.headers(),
    );
    await expectRefused(reply, 401, /bad signature/);
  });

  it('a signature over different content is refused as a bad signature', async () => {
    const timestamp = Date.now();
    const reply = await post(
      server.http,
      '/api/notification/status/',
      {
        userid: alice.userid,
        messages: [requestId],
        status: 'read',
        timestamp,
        web3mq_signature: alice.tempKey.sign(alice.userid + 'delivered' + timestamp),
      },
      alice.headers(),
    );
    await expectRefused(reply, 401, /bad signature/);
  });

  it('a call without web3mq_signature is refused', async () => {
    const reply = await post(
      server.http,
      '/api/notification/status/',
      { userid: alice.userid, messages: [requestId], status: 'read', timestamp: Date.now() },
      alice.headers(),
    );
    await expectRefused(reply, 401, /web3mq_signature is missing/);
  });

  it('a call without the web3mq-request-pubkey or didkey header is refused', async () => {
    const timestamp = Date.now();
    const fields = {
      userid: alice.userid,
      messages: [requestId],
      status: 'read',
      timestamp,
      web3mq_signature: alice.tempKey.sign(alice.userid + 'read' + timestamp),
    };
    await expectRefused(
      await post(server.http, '/api/notification/status/', fields, { didkey: alice.didkey }),
      401,
      /web3mq-request-pubkey header is missing/,
    );
    await expectRefused(
      await post(server.http, '/api/notification/status/', fields, { 'web3mq-request-pubkey': alice.tempKey.publicHex }),
      401,
      /didkey header is missing/,
    );
  });

  it('a key nobody logged in with is refused as unknown', async () => {
    const stranger = newEd25519Key();
    const timestamp = Date.now();
    const reply = await post(
      server.http,
      '/api/notification/status/',
      {
        userid: alice.userid,
        messages: [requestId],
        status: 'read',
        timestamp,
        web3mq_signature: stranger.sign(alice.userid + 'read' + timestamp),
      },
      { 'web3mq-request-pubkey': stranger.publicHex, didkey: alice.didkey },
    );
    await expectRefused(reply, 401, /unknown key/);
  });

  it('the main key cannot sign calls: only the temporary key of a login can', async () => {
    const timestamp = Date.now();
    const reply = await post(
      server.http,
      '/api/notification/status/',
      {
        userid: alice.userid,
        messages: [requestId],
        status: 'read',
        timestamp,
        web3mq_signature: alice.mainKey.sign(alice.userid + 'read' + timestamp),
      },
      { 'web3mq-request-pubkey': alice.mainKey.publicHex, didkey: alice.didkey },
    );
    await expectRefused(reply, 401, /main key only signs logins/);
  });

  it('an expired temporary key is refused', async () => {
    const carol = await new RawWeb3mqUser(server.http).registerAndLogin();
    // The key's lifetime is over: set its expiry into the past rather than waiting for it.
    await server.app.parts.store.db
      .updateTable('web3mq_login_keys')
      .set({ expires_at: Date.now() - 1 })
      .where('pubkey', '=', carol.tempKey.publicHex)
      .execute();
    before = await web3mqSnapshot(server.app.parts.store);
    const reply = await carol.history({});
    await expectRefused(reply, 401, /expired/);
  });

  it('a timestamp more than five minutes old or ahead is refused, even when correctly signed', async () => {
    await expectRefused(await alice.setStatus([requestId], 'read', Date.now() - 6 * 60 * 1000), 401, /timestamp is more than 5 minutes/);
    await expectRefused(await alice.setStatus([requestId], 'read', Date.now() + 6 * 60 * 1000), 401, /timestamp is more than 5 minutes/);
  });

  it("a userid that is not the key's owner is refused: Alice cannot read Bob's history", async () => {
    const timestamp = Date.now();
    const reply = await alice.get('/api/notification/history/', {
      userid: bob.userid,
      page: 1,
      size: 20,
      timestamp,
      web3mq_signature: alice.tempKey.sign(bob.userid + timestamp),
    });
    await expectRefused(reply, 403, /not the owner/);
  });

  it("a userid that is not the key's owner cannot mark notifications either", async () => {
    const timestamp = Date.now();
    const reply = await post(
      server.http,
      '/api/notification/status/',
      {
        userid: alice.userid,
        messages: [requestId],
        status: 'read',
        timestamp,
        web3mq_signature: bob.tempKey.sign(alice.userid + 'read' + timestamp),
      },
      bob.headers(),
    );
    await expectRefused(reply, 403, /not the owner/);
  });

  it("a didkey that is not the key owner's did is refused", async () => {
    const timestamp = Date.now();
    const reply = await post(
      server.http,
      '/api/notification/status/',
      {
        userid: alice.userid,
        messages: [requestId],
        status: 'read',
        timestamp,
        web3mq_signature: alice.tempKey.sign(alice.userid + 'read' + timestamp),
      },
      { 'web3mq-request-pubkey': alice.tempKey.publicHex, didkey: bob.didkey },
    );
    await expectRefused(reply, 403, /didkey/);
  });

  it("Bob cannot mark Alice's notification, even signing as himself", async () => {
    await expectRefused(await bob.setStatus([requestId], 'read'), 404, /no notification/);
  });

  it('malformed parameters are refused with 400 and say which', async () => {
    await expectRefused(await alice.setStatus([requestId], 'seen'), 400, /status must be delivered or read/);
    await expectRefused(
      await alice.signedPost('/api/notification/status/', { messages: requestId, status: 'read' }, ['read']),
      400,
      /messages must be a non-empty array/,
    );
    await expectRefused(
      await alice.signedPost('/api/notification/status/', { messages: [], status: 'read' }, ['read']),
      400,
      /messages must be a non-empty array/,
    );
    await expectRefused(
      await alice.signedPost('/api/notification/status/', { messages: Array.from({ length: 101 }, (_, i) => `id${i}`), status: 'read' }, [
        'read',
      ]),
      400,
      /at most 100/,
    );
    await expectRefused(await alice.history({ size: 0 }), 400, /size must be between 1 and 100/);
    await expectRefused(await alice.history({ size: 101 }), 400, /size must be between 1 and 100/);
    await expectRefused(await alice.history({ page: 0 }), 400, /page must be between/);
    await expectRefused(await alice.history({ notice_type: 'system.everything' }), 400, /notice_type must be one of/);
    await expectRefused(
      await alice.get('/api/notification/history/', {
        userid: alice.userid,
        page: 1,
        size: 1,
        timestamp: 'yesterday',
        web3mq_signature: 'x',
      }),
      400,
      /timestamp must be milliseconds/,
    );
    await expectRefused(
      await alice.get('/api/notification/history/', { page: 1, size: 1, timestamp: Date.now() }),
      400,
      /userid is required/,
    );
    const malformed = await fetch(`${server.http}/api/notification/status/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...alice.headers() },
      body: '{"userid": ',
    });
    await expectRefused({ status: malformed.status, body: (await malformed.json()) as Reply['body'] }, 400, /malformed JSON/);
    await expectRefused(
      await post(server.http, '/api/contacts/add_friends/', [] as unknown as Record<string, unknown>, alice.headers()),
      400,
      /JSON object/,
    );
  });

  it('an unknown Web3MQ path answers in the Web3MQ shape', async () => {
    await expectRefused(await post(server.http, '/api/no_such_call/', {}), 404, /no Web3MQ endpoint/);
  });
});
