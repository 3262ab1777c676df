import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { apnsToken, fcmToken, type PushDoubles } from './mocks/push-env.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';

describeEachStore('a provider asking to retry later', (kind) => {
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

  it('503 with Retry-After: 1 is retried no sooner than a second later, and the push arrives', async () => {
    doubles.apns.failNext({ status: 503, reason: 'ServiceUnavailable', retryAfter: 1 });
    doubles.fcm.failNext({ errorCode: 'UNAVAILABLE', retryAfter: 1 });
    const apnsRefusals: Array<{ at: number }> = [];
    const fcmRefusals: Array<{ at: number }> = [];
    doubles.apns.events.on('refused', (r) => apnsRefusals.push(r));
    doubles.fcm.events.on('refused', (r) => fcmRefusals.push(r));

    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'slow-1', 'AAAA');

    await waitFor(
      () => doubles.apns.pushesTo(iphone).length === 1 && doubles.fcm.messagesTo(android).length === 1,
      8000,
      'both pushes to arrive',
    );
    expect(apnsRefusals).toHaveLength(1);
    expect(fcmRefusals).toHaveLength(1);
    const [apnsRefusal] = apnsRefusals;
    const [fcmRefusal] = fcmRefusals;
    expect(doubles.apns.pushesTo(iphone)[0].at - apnsRefusal.at).toBeGreaterThanOrEqual(1000);
    expect(doubles.fcm.messagesTo(android)[0].at - fcmRefusal.at).toBeGreaterThanOrEqual(1000);
    expect(doubles.apns.pushesTo(iphone)[0].payload.aps.alert.title).toBe('1 message from Alice');

    const rows = await waitFor(
      async () => {
        const r = await server.app.parts.store.db.selectFrom('deliveries').select(['state', 'attempts', 'last_error']).execute();
        return r.every((row) => row.state === 'delivered') ? r : undefined;
      },
      5000,
      'the deliveries to be recorded',
    );
    expect(rows.map((r) => r.attempts)).toEqual([2, 2]);
  });
});
