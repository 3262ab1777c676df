import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, startTestServer, type TestServer } from './helpers/server.ts';
import { RawWeb3mqUser, newEd25519Key, newWallet, post, sha3_224, web3mqSnapshot, type Reply } from './helpers/web3mq.ts';

describeEachStore('Web3MQ keys: register, log in, user info, on $name', (kind) => {
  let server: TestServer;
  let before: Awaited<ReturnType<typeof web3mqSnapshot>>;

  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => server?.stop());
  beforeEach(async () => {
    before = await web3mqSnapshot(server.app.parts.store);
  });

  async function expectRefused(reply: Reply, status: number, message: RegExp) {
    expect(reply.status).toBe(status);
    expect(reply.body.code).toBe(status);
    expect(reply.body.msg).toMatch(message);
    expect(await web3mqSnapshot(server.app.parts.store)).toEqual(before);
  }

  it('an unknown wallet is "User not found"; after registering, user info names its userid and main key', async () => {
    const user = new RawWeb3mqUser(server.http);
    const lookup = { did_type: 'eth', did_value: user.wallet.address, timestamp: Date.now() };
    const missing = await post(server.http, '/api/get_user_info/', lookup);
    expect(missing).toEqual({ status: 404, body: { code: 404, msg: 'User not found' } });

    const registered = await post(server.http, '/api/user_register_v2/', user.registerBody());
    expect(registered.status).toBe(200);
    expect(registered.body.code).toBe(0);
    // Checksum capitals in the address find the same user.
    const found = await post(server.http, '/api/get_user_info/', {
      ...lookup,
      did_value: user.wallet.address.toUpperCase().replace('0X', '0x'),
    });
    expect(found.body).toEqual({
      code: 0,
      msg: 'ok',
      data: {
        userid: user.userid,
        did_type: 'eth',
        did_value: user.wallet.address,
        main_pubkey: user.mainKey.publicHex,
        pubkey_type: 'ed25519',
      },
    });
    const herald = await server.app.parts.store.db.selectFrom('users').selectAll().where('id', '=', user.userid).executeTakeFirstOrThrow();
    expect(herald.email).toBe(`${user.userid}@web3mq.invalid`);
  });

  it('a login signed with the main key installs a temporary key until its expiry', async () => {
    const user = new RawWeb3mqUser(server.http);
    await post(server.http, '/api/user_register_v2/', user.registerBody());
    const expires = Date.now() + 3600_000;
    const loggedIn = await post(server.http, '/api/user_login_v2/', user.loginBody(Date.now(), expires));
    expect(loggedIn.body).toEqual({
      code: 0,
      msg: 'ok',
      data: { userid: user.userid, pubkey_value: user.tempKey.publicHex, pubkey_expired_timestamp: expires },
    });
    const history = await user.history({});
    expect(history.body).toEqual({ code: 0, msg: 'ok', data: { total: 0, result: [] } });
  });

  it('registering is refused for a wallet signature by another address, a stale timestamp or an unsigned key', async () => {
    const user = new RawWeb3mqUser(server.http);
    const other = newWallet();
    const body = user.registerBody();
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...body, did_signature: other.personalSign(body.signature_content as string) }),
      401,
      /did_signature is not a personal-sign signature/,
    );
    await expectRefused(await post(server.http, '/api/user_register_v2/', { ...body, did_signature: '0x1234' }), 401, /did_signature/);
    // The wallet signed a text committing to one main key; another key cannot ride on it.
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...body, pubkey_value: newEd25519Key().publicHex }),
      401,
      /Nonce/,
    );
    await expectRefused(await post(server.http, '/api/user_register_v2/', user.registerBody(Date.now() - 10 * 60_000)), 401, /timestamp/);
  });

  it('did types other than eth are refused with a clear error', async () => {
    const user = new RawWeb3mqUser(server.http);
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...user.registerBody(), did_type: 'starknet' }),
      400,
      /did_type "starknet" is not supported: only eth/,
    );
  });

  it('registering the same userid or wallet twice is refused', async () => {
    const user = await new RawWeb3mqUser(server.http).registerAndLogin();
    before = await web3mqSnapshot(server.app.parts.store);
    await expectRefused(await post(server.http, '/api/user_register_v2/', user.registerBody()), 409, /already registered/);
  });

  it('malformed register fields are refused and say which', async () => {
    const user = new RawWeb3mqUser(server.http);
    const body = user.registerBody();
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...body, pubkey_value: 'not-hex' }),
      400,
      /pubkey_value must be/,
    );
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...body, did_value: '0x12' }),
      400,
      /did_value must be an Ethereum address/,
    );
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...body, userid: 'x'.repeat(65) }),
      400,
      /userid must be at most 64/,
    );
    await expectRefused(
      await post(server.http, '/api/user_register_v2/', { ...body, pubkey_type: 'rsa' }),
      400,
      /pubkey_type must be ed25519/,
    );
    const { timestamp: _dropped, ...withoutTimestamp } = body;
    await expectRefused(await post(server.http, '/api/user_register_v2/', withoutTimestamp), 400, /timestamp is required/);
  });

  it('a login is refused when not signed by the main key, for a changed content, or a stale timestamp', async () => {
    const user = new RawWeb3mqUser(server.http);
    await post(server.http, '/api/user_register_v2/', user.registerBody());
    before = await web3mqSnapshot(server.app.parts.store);
    const body = user.loginBody();
    const impostor = newEd25519Key();
    await expectRefused(
      await post(server.http, '/api/user_login_v2/', { ...body, login_signature: impostor.sign(body.signature_content as string) }),
      401,
      /login_signature does not verify/,
    );
    await expectRefused(
      await post(server.http, '/api/user_login_v2/', { ...body, main_pubkey: impostor.publicHex }),
      401,
      /main_pubkey is not/,
    );
    await expectRefused(
      await post(server.http, '/api/user_login_v2/', { ...body, pubkey_value: newEd25519Key().publicHex }),
      401,
      /signature_content must be sha3_224/,
    );
    await expectRefused(await post(server.http, '/api/user_login_v2/', user.loginBody(Date.now() - 10 * 60_000)), 401, /timestamp/);
    await expectRefused(
      await post(server.http, '/api/user_login_v2/', user.loginBody(Date.now(), Date.now() - 1000)),
      400,
      /in the future/,
    );
    await expectRefused(await post(server.http, '/api/user_login_v2/', { ...body, userid: 'user:nobody' }), 404, /User not found/);
    await expectRefused(await post(server.http, '/api/user_login_v2/', { ...body, did_value: newWallet().address }), 403, /did_value/);
  });

  it('an Ozeki user given a main key by the admin logs in and reads the same feed', async () => {
    const ozeki = await addUser(server, 'Olga');
    const mainKey = newEd25519Key();
    const refused = await fetch(`${server.http}/v1/users/${ozeki.userid}/web3mq-keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pubkey: mainKey.publicHex }),
    });
    expect(refused.status).toBe(401);
    const attached = await fetch(`${server.http}/v1/users/${ozeki.userid}/web3mq-keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ pubkey: mainKey.publicHex }),
    });
    expect(attached.status).toBe(201);
    expect(await attached.json()).toEqual({
      userid: ozeki.userid,
      did_type: 'herald',
      did_value: ozeki.userid,
      main_pubkey: mainKey.publicHex,
      pubkey_type: 'ed25519',
    });

    const temp = newEd25519Key();
    const timestamp = Date.now();
    const expires = timestamp + 3600_000;
    const content = sha3_224(ozeki.userid + temp.publicHex + expires + timestamp);
    const loggedIn = await post(server.http, '/api/user_login_v2/', {
      userid: ozeki.userid,
      did_type: 'herald',
      did_value: ozeki.userid,
      timestamp,
      pubkey_expired_timestamp: expires,
      login_signature: mainKey.sign(content),
      signature_content: content,
      main_pubkey: mainKey.publicHex,
      pubkey_type: 'ed25519',
      pubkey_value: temp.publicHex,
    });
    expect(loggedIn.body.code).toBe(0);

    const sender = await new RawWeb3mqUser(server.http).registerAndLogin();
    await sender.signedPost('/api/contacts/add_friends/', { target_userid: ozeki.userid, content: '' }, [ozeki.userid, '']);
    const now = Date.now();
    const query = new URLSearchParams({
      userid: ozeki.userid,
      page: '1',
      size: '5',
      timestamp: String(now),
      web3mq_signature: temp.sign(ozeki.userid + now),
    });
    const history = await fetch(`${server.http}/api/notification/history/?${query}`, {
      headers: { 'web3mq-request-pubkey': temp.publicHex, didkey: `herald:${ozeki.userid}` },
    });
    const body = (await history.json()) as Reply['body'];
    expect(body.data.total).toBe(1);
    expect(body.data.result[0]).toMatchObject({ from: sender.userid, payload: { type: 'system.friend_request' } });
  });
});
