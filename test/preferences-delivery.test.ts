import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, metricsText, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { apnsToken, fcmToken, type PushDoubles } from './mocks/push-env.ts';
import { OzekiClient } from '../client/ozeki.ts';
import type { NotificationFrame } from '../client/ws-receiver.ts';

const HOUR = 3600_000;

describeEachStore('preferences on every channel and for every source', (kind) => {
  let scene: PushScene | undefined;
  let doubles: PushDoubles;
  let server: TestServer;
  let second: TestServer | undefined;
  let alice: TestUser;
  let bob: TestUser;
  let live: RecordingReceiver | undefined;
  let withAlice: string;
  let group: string;
  const iphone = apnsToken();
  const android = fcmToken();
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  const setPreferences = async (body: unknown, on: TestServer = server) => {
    const response = await fetch(`${on.http}/v1/users/${bob.userid}/preferences`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
  };
  const gatewaySend = async (body: Record<string, unknown>) => {
    const response = await fetch(`${server.http}/v1/notifications`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ to: [bob.userid], ...body }),
    });
    expect(response.status).toBe(202);
  };
  const frameOf = (match: (frame: NotificationFrame) => boolean, what: string) =>
    waitFor(() => live!.frames.find((f): f is NotificationFrame => f.type === 'notification' && match(f)), 5000, what);
  /** Every push queued so far has been answered. */
  const settled = () =>
    waitFor(
      async () =>
        (await server.app.parts.store.db.selectFrom('deliveries').select('id').where('state', '=', 'pending').execute()).length === 0,
      5000,
      'the outbox to be empty',
    );
  /** The next push to each phone, after `seen` of them. */
  const nextPushes = async (seen: number, what: string) => {
    await waitFor(() => doubles.apns.pushesTo(iphone).length > seen && doubles.fcm.messagesTo(android).length > seen, 5000, what);
    return { apns: doubles.apns.pushesTo(iphone)[seen], fcm: doubles.fcm.messagesTo(android)[seen] };
  };

  beforeAll(async () => {
    // Bob's desktop acknowledges what it gets: without this, presence-aware holds would keep
    // his phone quiet for a reason of their own (test/push-presence-hold.test.ts).
    scene = await startPushScene(kind, { HERALD_PUSH_HOLD_S: '0' });
    ({ doubles, server, alice, bob } = scene);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: iphone });
    await addPushDevice(server, bob, 'android', android);
    const desk = new OzekiClient(server.http, newStation());
    await desk.login(bob.apikey, 'windows');
    live = await connectDevice(server, desk.station);
    withAlice = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
    const carol = (await (await import('./helpers/server.ts')).addUser(server, 'Carol')).userid;
    group = ((await alice.client.createConversation([bob.userid, carol], { displayname: 'Team' })).conversation as { id: string }).id;
  });
  afterAll(async () => {
    live?.receiver.close();
    await second?.stop();
    await scene?.stop();
  });

  it('do-not-disturb silences chat messages and gateway sends alike; the badge still counts', async () => {
    await setPreferences({ dnduntil: Date.now() + HOUR });
    await alice.client.addMessage(withAlice, 'dnd-1', 'aGk=');
    let pushes = await nextPushes(0, 'the pushes of the message');
    expect(pushes.apns.pushType).toBe('background');
    expect(pushes.apns.payload.aps).toMatchObject({ badge: 1, 'content-available': 1 });
    expect(pushes.fcm.message.notification).toBeUndefined();
    expect(await frameOf((f) => f.data.messageid === 'dnd-1', 'the message frame')).toMatchObject({ silent: true, badge: 1 });

    await gatewaySend({ title: 'Invoice 1 from Acme', kind: 'app.invoice', conversationid: 'invoices' });
    pushes = await nextPushes(1, 'the pushes of the invoice');
    expect(pushes.apns.pushType).toBe('background');
    expect(pushes.apns.payload.aps).toMatchObject({ badge: 2 });
    expect(await frameOf((f) => f.title === 'Invoice 1 from Acme', 'the invoice frame')).toMatchObject({ silent: true, badge: 2 });

    // Do-not-disturb wins over quiet hours that do not hold now (an hour ago, for one minute).
    await setPreferences({ quiethours: { start: '00:00', end: '00:01', timezone: 'UTC' } });
    await alice.client.addMessage(withAlice, 'dnd-2', 'aGk=');
    expect(await frameOf((f) => f.data.messageid === 'dnd-2', 'the second message frame')).toMatchObject({ silent: true });
    pushes = await nextPushes(2, 'the pushes of the second message');
    expect(pushes.apns.pushType).toBe('background');

    await setPreferences({ dnduntil: null, quiethours: null });
    await alice.client.addMessage(withAlice, 'dnd-over', 'aGk=');
    pushes = await nextPushes(3, 'the pushes after do-not-disturb');
    expect(pushes.apns.pushType).toBe('alert');
    expect(pushes.apns.payload.aps).toMatchObject({ badge: 4, sound: 'default' });
    expect(await frameOf((f) => f.data.messageid === 'dnd-over', 'the frame after')).toMatchObject({ silent: false, badge: 4 });
    expect(await metricsText(server)).toMatch(/herald_notifications_silenced_total\{reason="dnd"\} 3/);
  });

  it('a conversation muted until later is silent; the others, and the same one after the mute, alert', async () => {
    await setPreferences({ conversationmutes: { [group]: Date.now() + HOUR, invoices: Date.now() + HOUR } });
    await alice.client.addMessage(group, 'muted-1', 'aGk=');
    await alice.client.addMessage(withAlice, 'open-1', 'aGk=');
    await gatewaySend({ title: 'Invoice 2 from Acme', kind: 'app.invoice', conversationid: 'invoices' });
    expect(await frameOf((f) => f.data.messageid === 'muted-1', 'the group frame')).toMatchObject({ silent: true });
    expect(await frameOf((f) => f.data.messageid === 'open-1', 'the direct frame')).toMatchObject({ silent: false });
    expect(await frameOf((f) => f.title === 'Invoice 2 from Acme', 'the invoice frame')).toMatchObject({ silent: true });

    await setPreferences({ conversationmutes: { [group]: null } });
    await alice.client.addMessage(group, 'unmuted-1', 'aGk=');
    expect(await frameOf((f) => f.data.messageid === 'unmuted-1', 'the group frame after')).toMatchObject({ silent: false });
  });

  it('a device that alerts only for messages gets an invoice as a background push with the right badge', async () => {
    await settled();
    const seen = doubles.apns.pushesTo(iphone).length;
    expect(doubles.fcm.messagesTo(android).length).toBe(seen);
    await setPreferences({ devicealertkinds: { [bob.client.station]: ['message'] } });
    await gatewaySend({ title: 'Invoice 3 from Acme', kind: 'app.invoice' });
    const pushes = await nextPushes(seen, 'the pushes of the invoice');
    const frame = await frameOf((f) => f.title === 'Invoice 3 from Acme', 'the invoice frame');
    // Alert kinds are per device, for pushes: the iPhone does not alert, the Android phone and the live frame do.
    expect(pushes.apns.pushType).toBe('background');
    expect(pushes.apns.payload.aps).toMatchObject({ badge: frame.badge, 'content-available': 1 });
    expect(pushes.apns.payload.type).toBe('app.invoice');
    expect(pushes.fcm.message.notification).toEqual({ title: 'Invoice 3 from Acme', body: '' });
    expect(frame.silent).toBe(false);

    await alice.client.addMessage(withAlice, 'kind-1', 'aGk=');
    const message = await nextPushes(seen + 1, 'the pushes of the message');
    expect(message.apns.pushType).toBe('alert');
    await setPreferences({ devicealertkinds: { [bob.client.station]: null } });
  });

  it('a change made through one node holds at once on another node sharing the database', async () => {
    second = await startTestServer(kind, {}, { store: server.app.parts.store, bus: server.app.parts.bus });
    const otherDesk = new OzekiClient(second.http, newStation());
    await otherDesk.login(bob.apikey, 'linux');
    const onSecond = await connectDevice(second, otherDesk.station);
    try {
      await setPreferences({ dnduntil: Date.now() + HOUR }, server);
      await waitFor(
        () => second!.app.parts.preferences.silences(bob.userid, null, Date.now()) === 'dnd',
        5000,
        'the second node to learn of it',
      );
      // Alice writes through the second node, whose view learned of the change over the bus.
      const aliceThere = new OzekiClient(second.http, newStation());
      await aliceThere.login(alice.apikey);
      await aliceThere.addMessage(withAlice, 'across-1', 'aGk=');
      const frame = await waitFor(
        () => onSecond.frames.find((f) => f.type === 'notification' && f.data.messageid === 'across-1'),
        5000,
        'the frame on the second node',
      );
      expect(frame).toMatchObject({ silent: true });
    } finally {
      onSecond.receiver.close();
      await setPreferences({ dnduntil: null });
    }
  });
});
