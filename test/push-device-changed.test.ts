import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { apnsToken, type PushDoubles } from './mocks/push-env.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';
import { disablePush } from '../src/store/deliveries.ts';
import { userKeyOf } from '../src/notify/feed.ts';
import { notificationId } from '../src/model/notification.ts';

describeEachStore('a device that changed while its push waited, on $name', (kind) => {
  let doubles: PushDoubles;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let scene: PushScene | undefined;
  const phone = apnsToken();
  const disabledPad = apnsToken();
  const unregisteredMac = apnsToken();

  beforeAll(async () => {
    scene = await startPushScene(kind);
    ({ doubles, server, alice, bob } = scene);
  });
  afterAll(async () => scene?.stop());

  it('is not pushed: a disabled device and a device without its token each end dead, saying why', async () => {
    await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: phone });
    const pad = await addPushDevice(server, bob, 'ios', disabledPad);
    const mac = await addPushDevice(server, bob, 'mac', unregisteredMac);
    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'm-1', 'AAAA');
    await waitFor(() => doubles.apns.pushesTo(unregisteredMac).length === 1, 5000, 'the first push on all three devices');
    const db = server.app.parts.store.db;
    const feedRow = await db
      .selectFrom('notifications')
      .select(['user_key', 'seq'])
      .where('user_key', '=', userKeyOf(bob.userid))
      .executeTakeFirstOrThrow();
    const notification = { id: notificationId(feedRow.user_key, feedRow.seq) };

    // Between the commit that wrote their outbox rows and the claim, the iPad's push is
    // disabled and the Mac's token is removed.
    await disablePush(db, pad.station, disabledPad, 'the test disabled it');
    await mac.ok('chatdevice', { action: 'register', platform: 'mac', pushtoken: null });
    const now = Date.now();
    const row = (station: string) => ({
      notification_id: notification.id,
      user_id: bob.userid,
      station,
      provider: 'apns',
      state: 'pending',
      attempts: 0,
      next_attempt_at: now,
      lease_until: null,
      lease_owner: null,
      expires_at: now + 3_600_000,
      last_error: null,
      created_at: now,
      updated_at: now,
    });
    await db
      .insertInto('deliveries')
      .values([row(pad.station), row(mac.station)])
      .execute();
    // The next message wakes the dispatcher, which claims the two waiting rows too.
    await alice.client.addMessage(conversationId, 'm-2', 'BBBB');

    const closed = await waitFor(
      async () => {
        const rows = await db
          .selectFrom('deliveries')
          .select(['station', 'state', 'last_error'])
          .where('station', 'in', [pad.station, mac.station])
          .where('created_at', '=', now)
          .execute();
        return rows.every((r) => r.state !== 'pending') ? rows : undefined;
      },
      5000,
      'both waiting rows to be closed',
    );
    const byStation = Object.fromEntries(closed.map((r) => [r.station, r]));
    expect(byStation[pad.station]).toMatchObject({ state: 'dead', last_error: 'push is disabled for the device: the test disabled it' });
    expect(byStation[mac.station]).toMatchObject({ state: 'dead', last_error: 'the device no longer has this push registration' });
    await waitFor(() => doubles.apns.pushesTo(phone).length === 2, 5000, 'the phone to get the second push');
    expect(doubles.apns.pushesTo(disabledPad)).toHaveLength(1);
    expect(doubles.apns.pushesTo(unregisteredMac)).toHaveLength(1);
  });
});
