import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import type { NotificationFrame } from '../client/ws-receiver.ts';
import { describeEachStore } from './helpers/stores.ts';
import { metricsText, newStation, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';
import { apnsToken, type PushDoubles } from './mocks/push-env.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { listen } from './helpers/udp.ts';

/** The grace period of these tests: long enough to read in, short enough to wait out. */
const HOLD_S = 2;
const HOLD_MS = HOLD_S * 1000;

describeEachStore('presence-aware push hold', (kind) => {
  let scene: PushScene | undefined;
  let doubles: PushDoubles;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const iphone = apnsToken();
  const desktops: RecordingReceiver[] = [];

  beforeAll(async () => {
    scene = await startPushScene(kind, { HERALD_PUSH_HOLD_S: String(HOLD_S) });
    ({ doubles, server, alice, bob } = scene);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: iphone });
  });
  afterAll(async () => {
    for (const desktop of desktops) desktop.receiver.close();
    await scene?.stop();
  });

  const db = () => server.app.parts.store.db;
  const activeAt = async (station: string) =>
    (await db().selectFrom('devices').select('active_at').where('station', '=', station).executeTakeFirstOrThrow()).active_at;
  const deliveryState = async (notificationId: string) =>
    (await db().selectFrom('deliveries').select('state').where('notification_id', '=', notificationId).executeTakeFirst())?.state;
  const holds = async (outcome: string) =>
    Number(new RegExp(`herald_push_holds_total\\{outcome="${outcome}"\\} (\\d+)`).exec(await metricsText(server))?.[1] ?? 0);

  /** Bob's desktop app on WebSocket, acknowledging only when told; active (window in front) or idle. */
  async function bobsDesktop(use: 'active' | 'idle') {
    const desktopClient = new OzekiClient(server.http, newStation());
    await desktopClient.login(bob.apikey, 'windows');
    const desktop = await connectDevice(server, desktopClient.station, { autoAck: false });
    desktops.push(desktop);
    desktop.receiver.setActive(use === 'active');
    if (use === 'active') await waitFor(async () => (await activeAt(desktopClient.station)) !== null, 3000, 'the desktop to be in use');
    return { ...desktop, station: desktopClient.station, client: desktopClient };
  }

  /** Alice writes to Bob; resolves with the frame Bob's desktop got. */
  async function aliceWrites(desktop: RecordingReceiver) {
    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    const frame = desktop.receiver.next('notification', (n) => n.conversationid === conversationId && n.kind === 'message', 3000);
    const sentAt = Date.now();
    pushesBefore = doubles.apns.pushesTo(iphone).length;
    await alice.client.addMessage(conversationId, `m-${sentAt}`, 'aGVsbG8=');
    return { conversationId, sentAt, messageId: `m-${sentAt}`, frame: (await frame) as NotificationFrame };
  }

  /** The phone's pushes since Alice's last message (Alice and Bob share one conversation). */
  let pushesBefore = 0;
  const phonePushesOf = (conversationId: string) =>
    doubles.apns
      .pushesTo(iphone)
      .slice(pushesBefore)
      .filter((p) => p.payload.conversationid === conversationId);

  it("Bob active on his desktop reads Alice's message within the grace period: his phone gets no alert, only the clean badge", async () => {
    const desktop = await bobsDesktop('active');
    const heldBefore = await holds('held');
    const { conversationId, messageId, frame } = await aliceWrites(desktop);
    expect(await deliveryState(frame.id)).toBe('held');
    expect(await holds('held')).toBe(heldBefore + 1);

    await bob.client.viewed(conversationId, [messageId]);
    // The clean push is never held; the held alert ends cancelled when it falls due.
    await waitFor(() => phonePushesOf(conversationId).some((p) => p.payload.type === 'clean'), 3000, 'the clean push');
    await waitFor(async () => (await deliveryState(frame.id)) === 'cancelled', HOLD_MS + 3000, 'the held alert to be cancelled');
    const pushes = phonePushesOf(conversationId);
    expect(pushes).toHaveLength(1);
    expect(pushes[0].payload.aps).toEqual({ badge: 0, 'thread-id': conversationId });
    expect(await holds('cancelled')).toBeGreaterThanOrEqual(1);
  });

  it('Bob acknowledges the message on his active desktop: his phone gets no alert', async () => {
    const desktop = await bobsDesktop('active');
    const { conversationId, frame } = await aliceWrites(desktop);
    expect(await deliveryState(frame.id)).toBe('held');
    desktop.receiver.ack(frame.seq);
    await waitFor(async () => (await deliveryState(frame.id)) === 'cancelled', HOLD_MS + 3000, 'the held alert to be cancelled');
    expect(phonePushesOf(conversationId)).toHaveLength(0);
  });

  it('Bob leaves his desktop idle during the grace period without reading: the phone alerts after it', async () => {
    const desktop = await bobsDesktop('active');
    const sentBefore = await holds('sent');
    const { conversationId, sentAt, frame } = await aliceWrites(desktop);
    expect(await deliveryState(frame.id)).toBe('held');
    desktop.receiver.setActive(false);
    // An idle device's ack is no sign that Bob saw it.
    desktop.receiver.ack(frame.seq);
    await waitFor(() => phonePushesOf(conversationId).length === 1, HOLD_MS + 3000, 'the alert after the grace period');
    const [alert] = phonePushesOf(conversationId);
    expect(alert.payload.aps.alert.title).toMatch(/^\d+ messages? from Alice$/);
    expect(alert.at - sentAt).toBeGreaterThanOrEqual(HOLD_MS - 50);
    await waitFor(async () => (await deliveryState(frame.id)) === 'delivered', 3000, 'the alert recorded as delivered');
    expect(await holds('sent')).toBe(sentBefore + 1);
  });

  it('Bob closes his desktop during the grace period: the phone alerts after it', async () => {
    const desktop = await bobsDesktop('active');
    const { conversationId, sentAt, frame } = await aliceWrites(desktop);
    expect(await deliveryState(frame.id)).toBe('held');
    desktop.receiver.close();
    await waitFor(async () => (await activeAt(desktop.station)) === null, 3000, 'the closed desktop to count as not in use');
    await waitFor(() => phonePushesOf(conversationId).length === 1, HOLD_MS + 3000, 'the alert after the grace period');
    expect(phonePushesOf(conversationId)[0].at - sentAt).toBeGreaterThanOrEqual(HOLD_MS - 50);
  });

  it('with every desktop idle, the phone alerts at once', async () => {
    for (const earlier of desktops.splice(0)) earlier.receiver.close();
    const desktop = await bobsDesktop('idle');
    await waitFor(
      async () => {
        const rows = await db().selectFrom('devices').select('active_at').where('user_id', '=', bob.userid).execute();
        return rows.every((r) => r.active_at === null);
      },
      3000,
      "none of Bob's devices in use",
    );
    const { conversationId, sentAt, frame } = await aliceWrites(desktop);
    expect(await deliveryState(frame.id)).not.toBe('held');
    await waitFor(() => phonePushesOf(conversationId).length === 1, 3000, 'the alert');
    expect(phonePushesOf(conversationId)[0].at - sentAt).toBeLessThan(HOLD_MS);
  });

  it("an active user's Android phone is held too; the silent push of Bob's own message never is", async () => {
    const android = await addPushDevice(server, bob, 'android', 'fcm-token-of-bobs-android-0123456789');
    try {
      const desktop = await bobsDesktop('active');
      const { conversationId, frame } = await aliceWrites(desktop);
      const states = await db().selectFrom('deliveries').select(['provider', 'state']).where('notification_id', '=', frame.id).execute();
      expect(states.map((s) => `${s.provider}:${s.state}`).sort()).toEqual(['apns:held', 'fcm:held']);

      // Bob answers from his desktop: his phones get a silent "Message sent", at once.
      const own = desktop.receiver.next('notification', (n) => n.conversationid === conversationId && n.silent, 3000);
      await desktop.client.addMessage(conversationId, 'answer', 'aGk=');
      const silent = (await own) as NotificationFrame;
      expect(await deliveryState(silent.id)).not.toBe('held');
      await waitFor(() => phonePushesOf(conversationId).some((p) => p.payload.id === silent.id), 3000, 'the silent push');
    } finally {
      await android.ok('chatdevice', { action: 'register', platform: 'android', pushtoken: '' });
    }
  });

  it('Bob in use on his UDP desktop sees the message there: the phone gets no alert; idle again, it alerts at once', async () => {
    for (const earlier of desktops.splice(0)) earlier.receiver.close();
    const desktopUser = { ...bob, client: new OzekiClient(server.http, newStation()) };
    const { receiver, frames } = await listen(desktopUser);
    try {
      receiver.setActive(true);
      await waitFor(async () => (await activeAt(desktopUser.client.station)) !== null, 3000, 'the UDP desktop to be in use');
      const created = await alice.client.createConversation([bob.userid]);
      const conversationId = (created.conversation as { id: string }).id;
      pushesBefore = doubles.apns.pushesTo(iphone).length;
      await alice.client.addMessage(conversationId, `u-${Date.now()}`, 'aGVsbG8=');
      // The receiver acknowledges what it gets; in use, that counts as seen.
      const frame = await waitFor(
        () => frames.find((f) => f.type === 'notification' && f.conversationid === conversationId && f.kind === 'message'),
        3000,
        'the UDP frame',
      );
      const id = frame.id as string;
      expect(await deliveryState(id)).toBe('held');
      await waitFor(async () => (await deliveryState(id)) === 'cancelled', HOLD_MS + 3000, 'the held alert to be cancelled');
      expect(phonePushesOf(conversationId)).toHaveLength(0);

      receiver.setActive(false);
      await waitFor(async () => (await activeAt(desktopUser.client.station)) === null, 3000, 'the UDP desktop to be idle');
      await alice.client.addMessage(conversationId, `u-${Date.now()}`, 'aGVsbG8=');
      await waitFor(() => phonePushesOf(conversationId).length === 1, HOLD_MS - 500, 'the alert, not held');
    } finally {
      await receiver.close();
    }
  });
});

describe('presence-aware push hold: configuration', () => {
  it('defaults to a 10 s hold for devices in use within 30 s; 0 turns it off', () => {
    expect(loadConfig({})).toMatchObject({ pushHoldMs: 10_000, activeWindowMs: 30_000 });
    expect(loadConfig({ HERALD_PUSH_HOLD_S: '0', HERALD_ACTIVE_WINDOW_S: '60' })).toMatchObject({ pushHoldMs: 0, activeWindowMs: 60_000 });
  });

  it.each([
    ['HERALD_PUSH_HOLD_S', '-1'],
    ['HERALD_PUSH_HOLD_S', '2.5'],
    ['HERALD_PUSH_HOLD_S', '3601'],
    ['HERALD_ACTIVE_WINDOW_S', '5'],
    ['HERALD_ACTIVE_WINDOW_S', 'soon'],
  ])('%s=%s stops the start with a message naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name} must be a whole number of seconds`));
  });
});
