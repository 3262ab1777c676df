import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { RawWeb3mqUser, newEd25519Key, post, web3mqSnapshot, type Ed25519Key } from './helpers/web3mq.ts';
import { RawLiveSocket, connectCommandBytes, decodeFields } from './helpers/web3mq-live.ts';
import { MAX_LOGIN_KEYS_PER_USER } from '../src/api/web3mq/keys.ts';
import { MAX_KEYS_TRIED } from '../src/api/web3mq/live.ts';
import { ReplayGuard } from '../src/api/web3mq/replay.ts';
import { TIMESTAMP_WINDOW_MS } from '../src/api/web3mq/signature.ts';

const PB = { connectReq: 2, connectResp: 3 };
const REPLAYED = { code: 409, msg: 'this signed request was already used; sign it again with a new timestamp' };

/** The same base64 text with the two spare bits of its last character set: it decodes to the same signature. */
function respelled(signature: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const last = alphabet.indexOf(signature[85]);
  return signature.slice(0, 85) + alphabet[last ^ 0b11] + '==';
}

describeEachStore('a captured Web3MQ signature works once, on $name', (kind) => {
  let server: TestServer;
  let alice: RawWeb3mqUser;
  let bob: RawWeb3mqUser;
  let topicId: string;
  const sockets: RawLiveSocket[] = [];

  beforeAll(async () => {
    server = await startTestServer(kind);
    [alice, bob] = await Promise.all([0, 1].map(() => new RawWeb3mqUser(server.http).registerAndLogin()));
    const topic = await bob.signedPost('/api/create_topic/', { topic_name: 'news' }, []);
    topicId = topic.body.data.topicid;
    const subscribed = await alice.signedPost('/api/subscribe_topic/', { topicid: topicId }, [topicId]);
    expect(subscribed.body.code).toBe(0);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await server?.stop();
  });

  /** A signed POST as it crossed the wire, so that it can be sent again byte for byte. */
  function captured(user: RawWeb3mqUser, path: string, fields: Record<string, unknown>, signedParts: string[]) {
    const timestamp = user.nextTimestamp();
    const body = {
      userid: user.userid,
      timestamp,
      web3mq_signature: user.tempKey.sign(user.userid + signedParts.join('') + timestamp),
      ...fields,
    };
    return { body, send: (changed: Record<string, unknown> = {}) => post(server.http, path, { ...body, ...changed }, user.headers()) };
  }

  async function aliceSubscriptions(): Promise<number> {
    return (await alice.history({ notice_type: 'subscription' })).body.data.total;
  }

  it('a replayed publish_topic_message is refused with 409 and tells the subscribers nothing twice', async () => {
    const publish = captured(bob, '/api/publish_topic_message/', { topicid: topicId, title: 'v1', content: 'out now' }, [topicId]);
    expect((await publish.send()).body).toEqual({ code: 0, msg: 'ok', data: { recipients: 1 } });
    const told = await aliceSubscriptions();
    const before = await web3mqSnapshot(server.app.parts.store);

    const replayed = await publish.send();
    expect(replayed).toEqual({ status: 409, body: REPLAYED });
    // The signature does not cover title and content: a replay with other text is the same replay.
    expect((await publish.send({ title: 'forged', content: 'forged' })).body).toEqual(REPLAYED);
    expect(await web3mqSnapshot(server.app.parts.store)).toEqual(before);
    expect(await aliceSubscriptions()).toBe(told);
  });

  it('a fresh signature for the same publication still goes out', async () => {
    const told = await aliceSubscriptions();
    const again = await bob.signedPost('/api/publish_topic_message/', { topicid: topicId, title: 'v1', content: 'out now' }, [topicId]);
    expect(again.body).toEqual({ code: 0, msg: 'ok', data: { recipients: 1 } });
    expect(await aliceSubscriptions()).toBe(told + 1);
  });

  it('replayed friend requests, group invitations, topic creations and status changes change nothing', async () => {
    const carol = await new RawWeb3mqUser(server.http).registerAndLogin();
    const calls = [
      captured(carol, '/api/contacts/add_friends/', { target_userid: alice.userid, content: 'hi' }, [alice.userid, 'hi']),
      captured(carol, '/api/group_invitation/', { groupid: 'group:replay', members: [alice.userid] }, ['group:replay']),
      captured(carol, '/api/create_topic/', { topic_name: 'twice?' }, []),
    ];
    for (const call of calls) expect((await call.send()).body.code).toBe(0);
    const invitation = (await alice.history({ notice_type: 'system.group_invitation' })).body.data.result[0].messageid;
    const read = captured(alice, '/api/notification/status/', { messages: [invitation], status: 'read' }, ['read']);
    expect((await read.send()).body.code).toBe(0);
    const agree = captured(alice, '/api/contacts/friend_requests/', { target_userid: carol.userid, action: 'agree' }, [
      'agree',
      carol.userid,
    ]);
    expect((await agree.send()).body.code).toBe(0);

    const before = await web3mqSnapshot(server.app.parts.store);
    for (const call of [...calls, read, agree]) expect(await call.send()).toEqual({ status: 409, body: REPLAYED });
    expect(await web3mqSnapshot(server.app.parts.store)).toEqual(before);
  });

  it('the same signature written with other spare base64 bits is the same signature, and refused', async () => {
    const create = captured(bob, '/api/create_topic/', { topic_name: 'respelled' }, []);
    expect((await create.send()).body.code).toBe(0);
    const before = await web3mqSnapshot(server.app.parts.store);
    const variant = respelled(create.body.web3mq_signature);
    expect(variant).not.toBe(create.body.web3mq_signature);
    expect(Buffer.from(variant, 'base64')).toEqual(Buffer.from(create.body.web3mq_signature, 'base64'));
    expect((await create.send({ web3mq_signature: variant })).body).toEqual(REPLAYED);
    expect(await web3mqSnapshot(server.app.parts.store)).toEqual(before);
  });

  it('a history URL can be read again, but its signature cannot be spent on a publication', async () => {
    // Web3MQ signs userid + topic + timestamp for both: the history read and the publication.
    const timestamp = bob.nextTimestamp();
    const signature = bob.tempKey.sign(bob.userid + topicId + timestamp);
    const query = { userid: bob.userid, topic: topicId, page: 1, size: 5, timestamp, web3mq_signature: signature };
    expect((await bob.get('/api/notification/history/', query)).body.code).toBe(0);
    expect((await bob.get('/api/notification/history/', { ...query, page: 2 })).body.code).toBe(0);

    const told = await aliceSubscriptions();
    const forged = await post(
      server.http,
      '/api/publish_topic_message/',
      { userid: bob.userid, topicid: topicId, title: 'forged', content: 'forged', timestamp, web3mq_signature: signature },
      bob.headers(),
    );
    expect(forged).toEqual({ status: 409, body: REPLAYED });
    expect(await aliceSubscriptions()).toBe(told);
  });

  it('a replayed login or register is refused and changes nothing', async () => {
    const dave = new RawWeb3mqUser(server.http);
    const register = dave.registerBody(dave.nextTimestamp());
    expect((await post(server.http, '/api/user_register_v2/', register)).body.code).toBe(0);
    const login = dave.loginBody();
    expect((await post(server.http, '/api/user_login_v2/', login)).body.code).toBe(0);
    const before = await web3mqSnapshot(server.app.parts.store);

    expect(await post(server.http, '/api/user_login_v2/', login)).toEqual({ status: 409, body: REPLAYED });
    expect(await post(server.http, '/api/user_register_v2/', register)).toEqual({ status: 409, body: REPLAYED });
    expect(await web3mqSnapshot(server.app.parts.store)).toEqual(before);
  });

  function connectFrame(userId: string, key: Ed25519Key, timestamp: number): Uint8Array {
    const msgSign = key.sign('nodeId' + userId + timestamp);
    return Uint8Array.from([10, PB.connectReq, ...connectCommandBytes({ nodeId: 'nodeId', userId, timestamp, msgSign })]);
  }

  function rawSocket(): RawLiveSocket {
    const socket = new RawLiveSocket(`${server.http.replace('http:', 'ws:')}/messages`);
    sockets.push(socket);
    return socket;
  }

  it('a replayed ConnectReq is closed with a reason that says so; a new one connects', async () => {
    const connectReq = connectFrame(alice.userid, alice.tempKey, alice.nextTimestamp());
    const first = rawSocket();
    await first.send(connectReq);
    const resp = decodeFields(await first.next(PB.connectResp));
    expect(resp.find((f) => f.field === 2)?.value.toString()).toBe(alice.userid);

    const copy = rawSocket();
    await copy.send(connectReq);
    expect(await copy.closed).toEqual({ code: 4401, reason: 'this ConnectReq was already used; sign a new one with a new timestamp' });
    expect(copy.frames).toEqual([]);

    const fresh = rawSocket();
    await fresh.send(connectFrame(alice.userid, alice.tempKey, alice.nextTimestamp()));
    await fresh.next(PB.connectResp);
  });

  it(`a login beyond ${MAX_LOGIN_KEYS_PER_USER} held keys retires the oldest, and a ConnectReq is checked against the newest ${MAX_KEYS_TRIED} only`, async () => {
    const erin = await new RawWeb3mqUser(server.http).registerAndLogin();
    const db = server.app.parts.store.db;
    const first = erin.tempKey;
    // Logins in one millisecond share created_at: make the first key unambiguously the oldest.
    await db
      .updateTable('web3mq_login_keys')
      .set({ created_at: Date.now() - 60_000 })
      .where('pubkey', '=', first.publicHex)
      .execute();
    const keys: Ed25519Key[] = [first];
    for (let i = 1; i <= MAX_LOGIN_KEYS_PER_USER; i++) {
      erin.tempKey = newEd25519Key();
      keys.push(erin.tempKey);
      const loggedIn = await post(server.http, '/api/user_login_v2/', erin.loginBody());
      expect(loggedIn.body.code).toBe(0);
    }
    const held = await db.selectFrom('web3mq_login_keys').select('pubkey').where('user_id', '=', erin.userid).execute();
    expect(held).toHaveLength(MAX_LOGIN_KEYS_PER_USER);
    expect(held.map((k) => k.pubkey)).not.toContain(first.publicHex);

    erin.tempKey = first;
    const retired = await erin.history({});
    expect(retired.body).toEqual({ code: 401, msg: 'unknown key: web3mq-request-pubkey is not a logged-in key' });

    // The second key is still held, but older than the ones a ConnectReq is checked against.
    await db
      .updateTable('web3mq_login_keys')
      .set({ created_at: Date.now() - 30_000 })
      .where('pubkey', '=', keys[1].publicHex)
      .execute();
    const old = rawSocket();
    await old.send(connectFrame(erin.userid, keys[1], erin.nextTimestamp()));
    expect(await old.closed).toEqual({ code: 4401, reason: 'bad signature: msgSign does not verify with a login key of this userId' });
    const newest = rawSocket();
    await newest.send(connectFrame(erin.userid, keys[MAX_LOGIN_KEYS_PER_USER], erin.nextTimestamp()));
    await newest.next(PB.connectResp);
  });
});

describe('the memory of used signatures', () => {
  const t0 = 1_700_000_000_000;

  it('forgets a signature once its timestamp has left the window, and not before', () => {
    const guard = new ReplayGuard();
    expect(guard.claim('a', 'alice', t0, 'write', t0)).toBeUndefined();
    expect(guard.claim('a', 'alice', t0, 'write', t0 + TIMESTAMP_WINDOW_MS)?.refused).toBe('replayed');
    expect(guard.claim('b', 'alice', t0 + 1, 'write', t0 + 2 * TIMESTAMP_WINDOW_MS)).toBeUndefined();
    expect(guard.size).toBe(1);
  });

  it('repeats a read, but a signature used for a read or a write is spent for writes', () => {
    const guard = new ReplayGuard();
    expect(guard.claim('read', 'alice', t0, 'read', t0)).toBeUndefined();
    expect(guard.claim('read', 'alice', t0, 'read', t0 + 1)).toBeUndefined();
    expect(guard.claim('read', 'alice', t0, 'write', t0 + 2)?.refused).toBe('replayed');
    expect(guard.claim('write', 'alice', t0, 'write', t0)).toBeUndefined();
    expect(guard.claim('write', 'alice', t0, 'read', t0 + 1)?.refused).toBe('replayed');
  });

  it('when full, refuses new signatures rather than forgetting ones still in the window; one user cannot fill it alone', () => {
    const guard = new ReplayGuard(undefined, 3, 2);
    expect(guard.claim('a1', 'alice', t0, 'write', t0)).toBeUndefined();
    expect(guard.claim('a2', 'alice', t0, 'write', t0)).toBeUndefined();
    expect(guard.claim('a3', 'alice', t0, 'write', t0)?.refused).toBe('user over limit');
    expect(guard.claim('b1', 'bob', t0, 'write', t0)).toBeUndefined();
    expect(guard.claim('c1', 'carol', t0, 'write', t0)?.refused).toBe('node over limit');
    expect(guard.claim('a1', 'alice', t0, 'write', t0 + 1)?.refused).toBe('replayed');
    // Once their timestamps are stale, there is room again.
    const later = t0 + TIMESTAMP_WINDOW_MS + 60_000;
    expect(guard.claim('c1', 'carol', later, 'write', later)).toBeUndefined();
    expect(guard.size).toBe(1);
  });
});
