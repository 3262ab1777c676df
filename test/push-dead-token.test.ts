import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { apnsToken, fcmToken, type PushDoubles } from './mocks/push-env.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';

describeEachStore('a dead push token', (kind) => {
  let doubles: PushDoubles;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const deadIphone = apnsToken();
  const goodIphone = apnsToken();
  const deadAndroid = fcmToken();
  let androidStation: string;
  let conversationId: string;

  let scene: PushScene | undefined;

  beforeAll(async () => {
    scene = await startPushScene(kind);
    ({ doubles, server, alice, bob } = scene);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: deadIphone });
    await addPushDevice(server, bob, 'ios', goodIphone);
    androidStation = (await addPushDevice(server, bob, 'android', deadAndroid)).station;
    const created = await alice.client.createConversation([bob.userid]);
    conversationId = (created.conversation as { id: string }).id;
  });
  afterAll(async () => scene?.stop());

  it('410 Unregistered and UNREGISTERED disable the token, which then receives nothing more', async () => {
    const unregisteredAt = Date.now() - 60_000;
    doubles.apns.unregister(deadIphone, unregisteredAt);
    doubles.fcm.unregister(deadAndroid);
    const db = server.app.parts.store.db;

    await alice.client.addMessage(conversationId, 'm-1', 'AAAA');
    await waitFor(() => doubles.apns.pushesTo(goodIphone).length === 1, 5000, 'the healthy iPhone to get the first push');
    const disabled = await waitFor(
      async () => {
        const rows = await db
          .selectFrom('devices')
          .selectAll()
          .where('user_id', '=', bob.userid)
          .where('push_disabled_at', 'is not', null)
          .execute();
        return rows.length === 2 ? rows : undefined;
      },
      5000,
      'both dead devices to be disabled',
    );
    const reasons = Object.fromEntries(disabled.map((d) => [d.push_provider, d.push_disabled_reason]));
    expect(reasons.apns).toContain('410 Unregistered');
    expect(reasons.apns).toContain(new Date(unregisteredAt).toISOString());
    expect(reasons.fcm).toContain('404 UNREGISTERED');
    for (const device of disabled) expect(device.push_disabled_at).toBeGreaterThan(unregisteredAt);
    const refusedApns = doubles.apns.answers.get(410);
    expect(refusedApns).toBe(1);

    // The admin API shows the device's push as disabled, with the reason.
    const listed = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const devices = (
      (await listed.json()) as { devices: Array<{ station: string; push: { enabled: boolean; disabledreason: string } | null }> }
    ).devices;
    expect(devices.find((d) => d.station === androidStation)?.push).toMatchObject({ enabled: false });

    await alice.client.addMessage(conversationId, 'm-2', 'BBBB');
    await waitFor(() => doubles.apns.pushesTo(goodIphone).length === 2, 5000, 'the healthy iPhone to get the second push');
    const rows = await db
      .selectFrom('deliveries')
      .innerJoin('devices', 'devices.station', 'deliveries.station')
      .select(['devices.push_token', 'deliveries.state'])
      .execute();
    // The second message made no outbox rows for the dead devices, and nothing more was tried.
    expect(rows.filter((r) => r.push_token === deadIphone || r.push_token === deadAndroid).map((r) => r.state)).toEqual(['dead', 'dead']);
    expect(doubles.apns.answers.get(410)).toBe(1);
    expect(doubles.fcm.messagesTo(deadAndroid)).toEqual([]);
    expect(doubles.apns.pushesTo(deadIphone)).toEqual([]);
  });
});
