import { createRequire } from 'node:module';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { newStation, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { RawWeb3mqUser, ed25519FromSeedHex, newWallet, type Reply } from './helpers/web3mq.ts';
import { apiKeyOf } from '../src/chat/users.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { installBrowserGlobals } from './helpers/web3mq-live.ts';
import { feedHead } from '../src/notify/feed.ts';

/**
 * The official Web3MQ JavaScript SDK, unchanged, pointed at Herald with `connectUrl`.
 * It is written for browsers, so the test gives it the few browser globals it touches:
 * `window.crypto` (Web Crypto, which Node has), `window.btoa`/`atob`, and a WebSocket class.
 * The SDK opens Web3MQ's own live socket (`wss://…/messages`, protobuf) as soon as a
 * client is made; web3mq-live.test.ts covers that socket, so here it is given an inert
 * stand-in that never connects. Likewise the SDK's local
 * chat-history cache (IndexedDB, localStorage) gets in-memory or inert stand-ins: the
 * notification calls under test never use it.
 */
class InertWebSocket {
  binaryType = 'arraybuffer';
  onopen: unknown = null;
  onmessage: unknown = null;
  onclose: unknown = null;
  constructor(readonly url: string) {}
  send(): void {}
  close(): void {}
}

installBrowserGlobals(InertWebSocket);

const require = createRequire(import.meta.url);
const { Client } = require('@web3mq/client') as typeof import('@web3mq/client');

interface SdkNotification {
  title: string;
  content: string;
  type: string;
  messageId: string;
  read: boolean;
}

describeEachStore('the Web3MQ SDK against Herald', (kind) => {
  let server: TestServer;
  const wallet = newWallet();
  const password = 'correct horse battery staple';
  let aliceId: string;
  let tempPrivateKey: string;
  let bob: RawWeb3mqUser;
  let device: RecordingReceiver | undefined;

  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => {
    device?.receiver.close();
    await server?.stop();
  });

  const unreadOf = async (userId: string) => (await feedHead(server.app.parts.store.db, userId)).badge;

  it('Alice registers her wallet and logs in with a temporary key, all through the SDK', async () => {
    const url = await Client.init({ connectUrl: server.http, app_key: 'herald-test' });
    expect(url).toBe(server.http);
    const register = Client.register;

    const unknown = await register.getUserInfo({ did_type: 'eth', did_value: wallet.address });
    expect(unknown.userExist).toBe(false);
    expect(unknown.userid).toMatch(/^user:[0-9a-f]{56}$/);
    aliceId = unknown.userid;

    // The main key pair is derived from a wallet signature, as the SDK does it.
    const { signContent: keySignContent } = await register.getMainKeypairSignContent({
      password,
      did_value: wallet.address,
      did_type: 'metamask',
    });
    const mainKeys = await register.getMainKeypairBySignature(wallet.personalSign(keySignContent), password);

    const { signContent } = await register.getRegisterSignContent({
      userid: aliceId,
      mainPublicKey: mainKeys.publicKey,
      didType: 'metamask',
      didValue: wallet.address,
      signContentURI: server.http,
    });
    const registered = await register.register({
      userid: aliceId,
      didValue: wallet.address,
      mainPublicKey: mainKeys.publicKey,
      signature: wallet.personalSign(signContent),
      didType: 'metamask',
    });
    expect(registered).toMatchObject({ code: 0, data: { userid: aliceId, main_pubkey: mainKeys.publicKey } });

    const known = await register.getUserInfo({ did_type: 'eth', did_value: wallet.address });
    expect(known).toEqual({ userid: aliceId, userExist: true });

    const session = await register.login({
      password,
      userid: aliceId,
      didValue: wallet.address,
      didType: 'metamask',
      mainPrivateKey: mainKeys.secretKey,
      mainPublicKey: mainKeys.publicKey,
    });
    expect(session.tempPublicKey).toMatch(/^[0-9a-f]{64}$/);
    expect(session.tempPublicKey).not.toBe(mainKeys.publicKey);
    tempPrivateKey = session.tempPrivateKey;
    const stored = await server.app.parts.store.db.selectFrom('web3mq_login_keys').selectAll().where('user_id', '=', aliceId).execute();
    expect(stored.map((k) => k.pubkey)).toEqual([session.tempPublicKey]);
    expect(stored[0].expires_at).toBe(session.pubkeyExpiredTimestamp);
  });

  it('Alice gets a friend request, a group invitation and a topic message, and agrees to the friendship', async () => {
    const client = Client.getInstance({
      PrivateKey: tempPrivateKey,
      PublicKey: ed25519FromSeedHex(tempPrivateKey).publicHex,
      userid: aliceId,
    });
    bob = await new RawWeb3mqUser(server.http).registerAndLogin();

    // Alice's one device, a browser tab on Herald's own WebSocket, logged in with her API key.
    const { store } = server.app.parts;
    const alice = await store.db.selectFrom('users').select(['id', 'apikey_sealed']).where('id', '=', aliceId).executeTakeFirstOrThrow();
    const aliceTab = new OzekiClient(server.http, newStation());
    await aliceTab.login(apiKeyOf(store.secrets, alice), 'browser');
    device = await connectDevice(server, aliceTab.station);

    const asked = await bob.signedPost('/api/contacts/add_friends/', { target_userid: aliceId, content: 'Bob here' }, [
      aliceId,
      'Bob here',
    ]);
    expect(asked.body).toEqual({ code: 0, msg: 'ok' });
    await client.contact.operationFriend(bob.userid, 'agree');

    const friends = await aliceTab.ok('chatfriends', { action: 'list' });
    expect(Object.keys(friends.friends as Record<string, string>)).toEqual([bob.userid]);
    const bobHistory = await bob.history({ notice_type: 'system.agree_friend_request' });
    expect(bobHistory.body.data.total).toBe(1);
    expect(bobHistory.body.data.result[0]).toMatchObject({ from: aliceId, topic: bob.userid });

    const invited = await bob.signedPost('/api/group_invitation/', { groupid: 'group:herald-walk', members: [aliceId] }, [
      'group:herald-walk',
    ]);
    expect(invited.body.code).toBe(0);

    const topic = await bob.signedPost('/api/create_topic/', { topic_name: 'releases' }, []);
    const topicId = topic.body.data.topicid as string;
    expect(topicId).toMatch(/^topic:[0-9a-f]{56}$/);
    await client.topic.subscribeTopic(topicId);
    const published = await bob.signedPost('/api/publish_topic_message/', { topicid: topicId, title: 'v1.0', content: 'released' }, [
      topicId,
    ]);
    expect(published.body.code).toBe(0);

    // Each went to her WebSocket device as it happened, and each raised her badge.
    const kinds = await waitFor(
      () => {
        const seen = device!.frames.filter((f) => f.type === 'notification').map((f) => (f as { kind: string }).kind);
        return seen.length >= 3 ? seen : undefined;
      },
      5000,
      'three Web3MQ notifications on the WebSocket',
    );
    expect(kinds).toEqual(['system.friend_request', 'system.group_invitation', 'subscription']);
    expect(await unreadOf(aliceId)).toBe(3);
  });

  it('the SDK lists her history newest first, by notice type and by page', async () => {
    const client = Client.getInstance({
      PrivateKey: tempPrivateKey,
      PublicKey: ed25519FromSeedHex(tempPrivateKey).publicHex,
      userid: aliceId,
    });
    const all = (await client.notify.queryNotifications({ page: 1, size: 10 })) as SdkNotification[];
    expect(all.map((n) => n.type)).toEqual(['subscription', 'system.group_invitation', 'system.friend_request']);
    expect(all[0]).toMatchObject({ title: 'v1.0', content: 'released', read: false });
    expect(all[2]).toMatchObject({ content: 'Bob here', read: false });

    const invitations = (await client.notify.queryNotifications({
      notice_type: 'system.group_invitation',
      page: 1,
      size: 10,
    })) as SdkNotification[];
    expect(invitations.map((n) => n.messageId)).toEqual([all[1].messageId]);

    const secondPage = (await client.notify.queryNotifications({ page: 2, size: 2 })) as SdkNotification[];
    expect(secondPage.map((n) => n.messageId)).toEqual([all[2].messageId]);
  });

  it('the history has exactly the shape of the Web3MQ document, with total counting the filtered set', async () => {
    // Signed the SDK's way (userid + topic + notice_type + timestamp), with both filters.
    const key = ed25519FromSeedHex(tempPrivateKey);
    const timestamp = Date.now();
    const query = new URLSearchParams({
      userid: aliceId,
      topic: aliceId,
      notice_type: 'system.friend_request',
      size: '1',
      page: '1',
      timestamp: String(timestamp),
      web3mq_signature: key.sign(aliceId + aliceId + 'system.friend_request' + timestamp),
    });
    const response = await fetch(`${server.http}/api/notification/history/?${query}`, {
      headers: { 'web3mq-request-pubkey': key.publicHex, didkey: `eth:${wallet.address}` },
    });
    const reply = (await response.json()) as Reply['body'];
    expect(response.status).toBe(200);
    expect(reply).toEqual({
      code: 0,
      msg: 'ok',
      data: {
        total: 1,
        result: [
          {
            messageid: expect.any(String),
            from: bob.userid,
            from_sign: expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/),
            topic: aliceId,
            cipher_suite: 'NONE',
            payload_type: 'application/json; charset=utf-8',
            payload: { title: expect.stringContaining('Friend request'), content: 'Bob here', type: 'system.friend_request' },
            timestamp: expect.any(Number),
            version: 1,
            read: false,
          },
        ],
      },
    });
  });

  it('reading through the SDK clears the unread count once, and her WebSocket device sees the clean push', async () => {
    const client = Client.getInstance({
      PrivateKey: tempPrivateKey,
      PublicKey: ed25519FromSeedHex(tempPrivateKey).publicHex,
      userid: aliceId,
    });
    const all = (await client.notify.queryNotifications({ page: 1, size: 10 })) as SdkNotification[];
    const [subscription, invitation, request] = all.map((n) => n.messageId);

    await client.notify.changeNotificationStatus([subscription], 'delivered');
    expect(await unreadOf(aliceId)).toBe(3);

    await client.notify.changeNotificationStatus([subscription, invitation], 'read');
    expect(await unreadOf(aliceId)).toBe(1);
    const clean = await waitFor(() => device!.frames.find((f) => f.type === 'clean'), 5000, 'the clean push');
    expect(clean).toMatchObject({ type: 'clean', badge: 1 });

    // Reading the same notifications again changes nothing and sends no second clean push.
    await client.notify.changeNotificationStatus([subscription, invitation], 'read');
    expect(await unreadOf(aliceId)).toBe(1);

    await client.notify.changeNotificationStatus([request], 'read');
    expect(await unreadOf(aliceId)).toBe(0);
    const cleans = await waitFor(
      () => {
        const found = device!.frames.filter((f) => f.type === 'clean');
        return found.length >= 2 ? found : undefined;
      },
      5000,
      'the second clean push',
    );
    expect(cleans.map((f) => f.badge)).toEqual([1, 0]);

    const after = (await client.notify.queryNotifications({ page: 1, size: 10 })) as SdkNotification[];
    expect(after.map((n) => n.read)).toEqual([true, true, true]);
  });
});
