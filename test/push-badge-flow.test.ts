import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { apnsToken, fcmToken, type PushDoubles } from './mocks/push-env.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';

describeEachStore('mobile push of a message and its clean push', (kind) => {
  let doubles: PushDoubles;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const iphone = apnsToken();
  const android = fcmToken();

  let scene: PushScene | undefined;

  beforeAll(async () => {
    scene = await startPushScene(kind);
    ({ doubles, server, alice, bob } = scene);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: iphone });
    await addPushDevice(server, bob, 'android', android);
  });
  afterAll(async () => scene?.stop());

  it('Bob\'s iPhone and Android phone get "1 message from Alice" with badge 1, then the clean push with badge 0 after he reads', async () => {
    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'hello-1', 'aGVsbG8=');

    await waitFor(
      () => doubles.apns.pushesTo(iphone).length === 1 && doubles.fcm.messagesTo(android).length === 1,
      5000,
      'the message pushes',
    );
    const [apnsPush] = doubles.apns.pushesTo(iphone);
    expect(apnsPush.payload.aps).toEqual({
      alert: { title: '1 message from Alice', body: '' },
      badge: 1,
      sound: 'default',
      'thread-id': conversationId,
    });
    expect(apnsPush.payload.type).toBe('message');
    expect(apnsPush.payload.conversationid).toBe(conversationId);
    expect(apnsPush.pushType).toBe('alert');
    expect(apnsPush.priority).toBe(10);
    expect(apnsPush.collapseId).toBe(conversationId);
    expect(apnsPush.apnsId).toBe(apnsPush.payload.id);
    expect(apnsPush.expiration * 1000).toBeGreaterThan(Date.now() + 23 * 3600 * 1000);

    const [fcmPush] = doubles.fcm.messagesTo(android);
    expect(fcmPush.message.notification).toEqual({ title: '1 message from Alice', body: '' });
    expect(fcmPush.message.data).toMatchObject({ type: 'message', conversationid: conversationId, badge: '1' });
    expect(Object.values(fcmPush.message.data).every((v) => typeof v === 'string')).toBe(true);
    expect(fcmPush.message.android).toMatchObject({
      priority: 'high',
      collapse_key: conversationId,
      notification: { tag: conversationId },
    });
    expect(fcmPush.message.data.id).toBe(apnsPush.payload.id);

    await bob.client.viewed(conversationId, ['hello-1']);
    await waitFor(
      () => doubles.apns.pushesTo(iphone).length === 2 && doubles.fcm.messagesTo(android).length === 2,
      5000,
      'the clean pushes',
    );
    const clean = doubles.apns.pushesTo(iphone)[1];
    expect(clean.payload.aps).toEqual({ badge: 0, 'thread-id': conversationId });
    expect(clean.payload.type).toBe('clean');
    const cleanFcm = doubles.fcm.messagesTo(android)[1];
    expect(cleanFcm.message.notification).toBeUndefined();
    expect(cleanFcm.message.data).toMatchObject({ type: 'clean', badge: '0', conversationid: conversationId });

    // The outcomes are recorded in the outbox too: four rows, all delivered.
    const db = server.app.parts.store.db;
    await waitFor(
      async () => {
        const states = await db.selectFrom('deliveries').select('state').execute();
        return states.length === 4 && states.every((s) => s.state === 'delivered');
      },
      5000,
      'all four deliveries recorded as delivered',
    );
  });
});
