import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { waitFor } from './helpers/server.ts';
import { MATRIX_APPS, iosPusher, specExample, startMatrixScene, type MatrixScene } from './helpers/matrix.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { fcmToken } from './mocks/push-env.ts';
import { pusherUserId } from '../src/chat/matrix-pushers.ts';
import { apiKeyOf } from '../src/chat/users.ts';

describeEachStore('Herald as a Matrix push gateway', (kind) => {
  let scene: MatrixScene;

  beforeAll(async () => {
    scene = await startMatrixScene(kind);
  });
  afterAll(async () => scene?.stop());

  const db = () => scene.server.app.parts.store.db;
  const count = async (table: 'users' | 'devices') =>
    Number(
      (
        await db()
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('the specification\'s example reaches the iPhone as "Major Tom in Mission Control" with badge 2, without the message', async () => {
    const { token, pushkey } = iosPusher();
    const answer = await scene.notify(specExample({ app_id: MATRIX_APPS.ios, pushkey }));
    expect(answer).toEqual({ status: 200, json: { rejected: [] } });

    const [push] = await waitFor(
      () => scene.doubles.apns.pushesTo(token).length === 1 && scene.doubles.apns.pushesTo(token),
      5000,
      'the push',
    );
    expect(push.payload.aps).toEqual({
      alert: { title: 'Major Tom in Mission Control', body: '' },
      badge: 2,
      sound: 'default',
      'thread-id': '!slw48wfj34rtnrf:example.com',
    });
    expect(push.payload).toMatchObject({
      event_id: '$3957tyerfgewrf384',
      room_id: '!slw48wfj34rtnrf:example.com',
      unread_count: '2',
      missed_calls: '1',
      prio: 'high',
      type: 'message',
    });
    expect(push.pushType).toBe('alert');
    expect(push.priority).toBe(10);
    expect(JSON.stringify(push.payload)).not.toContain('floating');

    // The pusher became a user of its own, who cannot be an e-mail anyone reads.
    const user = await db()
      .selectFrom('users')
      .selectAll()
      .where('id', '=', pusherUserId(MATRIX_APPS.ios, pushkey))
      .executeTakeFirstOrThrow();
    expect(user.name).toBe('Matrix pusher');
    expect(user.email).toMatch(/^[0-9a-f]{64}@matrix\.invalid$/);
    expect(user.apikey_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(apiKeyOf(scene.server.app.parts.store.secrets, user)).toMatch(/^[0-9a-f]{48}$/);
    const device = await db().selectFrom('devices').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    expect(device).toMatchObject({ platform: 'ios', push_provider: 'apns', push_token: token, push_disabled_at: null });
    expect(device.station).toMatch(/^[0-9a-f]{32}$/);
  });

  it('an Android pusher with format event_id_only gets the ids and a title without names', async () => {
    const pushkey = fcmToken();
    const body = specExample({ app_id: MATRIX_APPS.android, pushkey, data: { format: 'event_id_only' } });
    expect(await scene.notify(body)).toEqual({ status: 200, json: { rejected: [] } });

    const [sent] = await waitFor(
      () => scene.doubles.fcm.messagesTo(pushkey).length === 1 && scene.doubles.fcm.messagesTo(pushkey),
      5000,
      'the FCM message',
    );
    expect(sent.message.notification).toEqual({ title: 'New message', body: '' });
    expect(sent.message.data).toMatchObject({
      event_id: '$3957tyerfgewrf384',
      room_id: '!slw48wfj34rtnrf:example.com',
      unread_count: '2',
      badge: '2',
    });
    expect(sent.message.android.notification.notification_count).toBe(2);
    const text = JSON.stringify(sent.message);
    expect(text).not.toContain('Major Tom');
    expect(text).not.toContain('Mission Control');
    expect(text).not.toContain('floating');
  });

  it("a Web Push pusher (pushkey = p256dh, data.endpoint and data.auth) wakes the browser's service worker", async () => {
    const browser = new TestBrowser();
    const endpoint = scene.pushService.subscribe();
    const { keys } = browser.subscription(endpoint);
    const body = specExample({ app_id: MATRIX_APPS.web, pushkey: keys.p256dh, data: { endpoint, auth: keys.auth } });
    expect(await scene.notify(body)).toEqual({ status: 200, json: { rejected: [] } });

    const [message] = await waitFor(
      () => scene.pushService.messagesTo(endpoint).length === 1 && scene.pushService.messagesTo(endpoint),
      5000,
      'the Web Push message',
    );
    expect(browser.decrypt(message.body)).toMatchObject({
      type: 'message',
      title: 'Major Tom in Mission Control',
      badge: 2,
      conversationid: '!slw48wfj34rtnrf:example.com',
      event_id: '$3957tyerfgewrf384',
      room_id: '!slw48wfj34rtnrf:example.com',
      unread_count: '2',
    });
    expect(message.urgency).toBe('high');
  });

  it('a notify with counts only sets the badge (a clean push), and prio low is silent', async () => {
    const { token, pushkey } = iosPusher();
    const device = { app_id: MATRIX_APPS.ios, pushkey };
    expect((await scene.notify(specExample(device))).status).toBe(200);
    await waitFor(() => scene.doubles.apns.pushesTo(token).length === 1, 5000, 'the first push');

    // The user read everything: the homeserver sends the new count alone (zero counts are omitted).
    const badgeOnly = await scene.notify({ notification: { devices: [device] } });
    expect(badgeOnly).toEqual({ status: 200, json: { rejected: [] } });
    const clean = await waitFor(() => scene.doubles.apns.pushesTo(token)[1], 5000, 'the badge push');
    expect(clean.payload.aps).toEqual({ badge: 0 });
    expect(clean.payload.type).toBe('clean');
    expect(clean.priority).toBe(5);

    const quiet = specExample(device);
    Object.assign(quiet.notification as object, { event_id: '$quiet', prio: 'low', counts: { unread: 1 } });
    expect((await scene.notify(quiet)).status).toBe(200);
    const silent = await waitFor(() => scene.doubles.apns.pushesTo(token)[2], 5000, 'the low-priority push');
    expect(silent.pushType).toBe('background');
    expect(silent.payload.aps).toMatchObject({ badge: 1, 'content-available': 1 });
    expect(silent.payload.aps.alert).toBeUndefined();
    expect(silent.payload).toMatchObject({ event_id: '$quiet', prio: 'low' });
  });

  it('a repeated notify for a pushkey reuses its user and device, and a retried event is pushed once', async () => {
    const { token, pushkey } = iosPusher();
    const body = specExample({ app_id: MATRIX_APPS.ios, pushkey });
    await scene.notify(body);
    await waitFor(() => scene.doubles.apns.pushesTo(token).length === 1, 5000, 'the first push');
    const users = await count('users');
    const devices = await count('devices');

    // The homeserver retries the same event (its first request timed out), then sends the next one.
    expect(await scene.notify(body)).toEqual({ status: 200, json: { rejected: [] } });
    const next = specExample({ app_id: MATRIX_APPS.ios, pushkey });
    Object.assign(next.notification as object, { event_id: '$next', counts: { unread: 3 } });
    expect(await scene.notify(next)).toEqual({ status: 200, json: { rejected: [] } });

    const second = await waitFor(() => scene.doubles.apns.pushesTo(token)[1], 5000, 'the second push');
    expect(second.payload).toMatchObject({ event_id: '$next', unread_count: '3' });
    expect(second.payload.aps.badge).toBe(3);
    expect(await count('users')).toBe(users);
    expect(await count('devices')).toBe(devices);
    const feed = await db()
      .selectFrom('notifications')
      .innerJoin('users', 'users.key', 'notifications.user_key')
      .select('notifications.seq')
      .where('users.id', '=', pusherUserId(MATRIX_APPS.ios, pushkey))
      .execute();
    expect(feed).toHaveLength(2);
    expect(scene.doubles.apns.pushesTo(token)).toHaveLength(2);
  });

  it('a pushkey of an app id Herald is not configured for is rejected, and nothing is made for it', async () => {
    const users = await count('users');
    const { token, pushkey } = iosPusher();
    const good = iosPusher();
    const body = specExample({ app_id: 'im.unknown.app', pushkey });
    (body.notification as { devices: unknown[] }).devices.push({ app_id: MATRIX_APPS.ios, pushkey: good.pushkey });
    expect(await scene.notify(body)).toEqual({ status: 200, json: { rejected: [pushkey] } });
    await waitFor(() => scene.doubles.apns.pushesTo(good.token).length === 1, 5000, 'the configured device’s push');
    expect(await count('users')).toBe(users + 1);
    expect(scene.doubles.apns.pushesTo(token)).toEqual([]);
  });

  it('a pushkey that cannot be a token of its provider is rejected', async () => {
    const browser = new TestBrowser();
    const { keys } = browser.subscription('https://push.example.org/x');
    const devices = [
      { app_id: MATRIX_APPS.ios, pushkey: 'not a token' },
      { app_id: MATRIX_APPS.android, pushkey: 'has spaces in it' },
      // Web Push: plain http, and a missing auth secret.
      { app_id: MATRIX_APPS.web, pushkey: keys.p256dh, data: { endpoint: 'http://push.example.org/x', auth: keys.auth } },
      { app_id: MATRIX_APPS.web, pushkey: browser.subscription('x').keys.auth, data: { endpoint: 'https://push.example.org/y' } },
    ];
    const users = await count('users');
    const answer = await scene.notify({ notification: { event_id: '$e', room_id: '!r:example.org', devices } });
    expect(answer).toEqual({ status: 200, json: { rejected: devices.map((d) => d.pushkey) } });
    expect(await count('users')).toBe(users);
  });

  it('a pushkey APNs answered 410 Unregistered for comes back in rejected on the next notify, until it is set again', async () => {
    const { token, pushkey } = iosPusher();
    // No other case here has APNs answer 410.
    const gone = () => scene.doubles.apns.answers.get(410) ?? 0;
    const goneBefore = gone();
    scene.doubles.apns.unregister(token, Date.now() - 1000);
    const body = specExample({ app_id: MATRIX_APPS.ios, pushkey, pushkey_ts: Math.floor(Date.now() / 1000) - 60 });
    // The outbox sends later: this answer cannot know yet.
    expect(await scene.notify(body)).toEqual({ status: 200, json: { rejected: [] } });
    const userId = pusherUserId(MATRIX_APPS.ios, pushkey);
    const disabled = await waitFor(
      async () =>
        db().selectFrom('devices').selectAll().where('user_id', '=', userId).where('push_disabled_at', 'is not', null).executeTakeFirst(),
      5000,
      'the device to be disabled',
    );
    expect(disabled.push_disabled_reason).toContain('410 Unregistered');

    const next = specExample({ app_id: MATRIX_APPS.ios, pushkey, pushkey_ts: Math.floor(Date.now() / 1000) - 60 });
    Object.assign(next.notification as object, { event_id: '$after-death' });
    expect(await scene.notify(next)).toEqual({ status: 200, json: { rejected: [pushkey] } });
    const feed = await db()
      .selectFrom('notifications')
      .innerJoin('users', 'users.key', 'notifications.user_key')
      .select('notifications.seq')
      .where('users.id', '=', userId)
      .execute();
    expect(feed).toHaveLength(1);

    // The app registered again (the homeserver set the pusher anew): pushed again.
    const again = specExample({ app_id: MATRIX_APPS.ios, pushkey, pushkey_ts: Math.ceil(Date.now() / 1000) + 1 });
    Object.assign(again.notification as object, { event_id: '$re-registered' });
    expect(await scene.notify(again)).toEqual({ status: 200, json: { rejected: [] } });
    // Re-enabled, so it was tried again (and this double still calls it gone).
    await waitFor(() => gone() === goneBefore + 2, 5000, 'the second attempt at the re-registered token');
    expect(scene.doubles.apns.pushesTo(token)).toEqual([]);
  });

  it('a Web Push pusher whose subscription is gone (410) is rejected on the next notify', async () => {
    const browser = new TestBrowser();
    const endpoint = scene.pushService.subscribe();
    const { keys } = browser.subscription(endpoint);
    scene.pushService.expire(endpoint);
    const device = { app_id: MATRIX_APPS.web, pushkey: keys.p256dh, data: { endpoint, auth: keys.auth } };
    expect(await scene.notify(specExample(device))).toEqual({ status: 200, json: { rejected: [] } });
    const userId = pusherUserId(MATRIX_APPS.web, keys.p256dh);
    await waitFor(
      async () =>
        db()
          .selectFrom('devices')
          .select('station')
          .where('user_id', '=', userId)
          .where('push_disabled_at', 'is not', null)
          .executeTakeFirst(),
      5000,
      'the subscription to be disabled',
    );
    const next = specExample(device);
    Object.assign(next.notification as object, { event_id: '$later' });
    expect(await scene.notify(next)).toEqual({ status: 200, json: { rejected: [keys.p256dh] } });
    expect(scene.pushService.messagesTo(endpoint)).toEqual([]);
  });
});
