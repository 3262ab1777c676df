import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { newStation, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { apnsToken, fcmToken, type PushDoubles } from './mocks/push-env.ts';
import { isQuietAt, type QuietHours } from '../src/notify/preferences.ts';

/** Zones around the world, at least one of which is always deep in the night and one in the day. */
const ZONES = [
  'Pacific/Kiritimati',
  'Pacific/Auckland',
  'Asia/Tokyo',
  'Asia/Kolkata',
  'Europe/Moscow',
  'Europe/London',
  'America/Sao_Paulo',
  'America/New_York',
  'America/Los_Angeles',
  'Pacific/Honolulu',
  'Pacific/Pago_Pago',
];

function hourIn(zone: string, at = Date.now()): number {
  return Number(new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', hour: '2-digit' }).format(at));
}

/** A zone where it is now between 00:00 and 05:59 (inside 22:00–07:00 by an hour at least). */
const nightZone = () => ZONES.find((zone) => hourIn(zone) <= 5)!;
/** A zone where it is now between 10:00 and 17:59 (outside 22:00–07:00 by hours). */
const dayZone = () => ZONES.find((zone) => hourIn(zone) >= 10 && hourIn(zone) <= 17)!;

const NIGHTS = { start: '22:00', end: '07:00' };

describeEachStore('quiet hours: pushes at night in the user’s own zone are silent', (kind) => {
  let scene: PushScene | undefined;
  let doubles: PushDoubles;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let live: RecordingReceiver | undefined;
  let conversationId: string;
  const iphone = apnsToken();
  const android = fcmToken();

  beforeAll(async () => {
    // Bob's desktop acknowledges what it gets: without this, presence-aware holds would keep
    // his phone quiet for a reason of their own (test/push-presence-hold.test.ts).
    scene = await startPushScene(kind, { HERALD_PUSH_HOLD_S: '0' });
    ({ doubles, server, alice, bob } = scene);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: iphone });
    await addPushDevice(server, bob, 'android', android);
    // Bob's desktop: a third device of his, on the live channel.
    const desk = new OzekiClient(server.http, newStation());
    await desk.login(bob.apikey, 'windows');
    live = await connectDevice(server, desk.station);
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
  });
  afterAll(async () => {
    live?.receiver.close();
    await scene?.stop();
  });

  it('where it is night now, Bob’s phones get a silent push with badge 1 and his desktop a frame marked silent', async () => {
    const zone = nightZone();
    const set = await bob.client.ok('chatpreferences', { action: 'set', quiethours: { ...NIGHTS, timezone: zone } });
    expect(set.preferences).toMatchObject({ quiethours: { ...NIGHTS, timezone: zone }, silentnow: true });

    await alice.client.addMessage(conversationId, 'night-1', 'aGVsbG8=');
    await waitFor(
      () => doubles.apns.pushesTo(iphone).length === 1 && doubles.fcm.messagesTo(android).length === 1,
      5000,
      'the pushes of the night message',
    );
    const [apns] = doubles.apns.pushesTo(iphone);
    expect(apns.pushType).toBe('background');
    expect(apns.priority).toBe(5);
    expect(apns.payload.aps).toEqual({ badge: 1, 'content-available': 1, 'thread-id': conversationId });
    const [fcm] = doubles.fcm.messagesTo(android);
    expect(fcm.message.notification).toBeUndefined();
    expect(fcm.message.data).toMatchObject({ type: 'message', badge: '1', conversationid: conversationId });
    expect(fcm.message.android).toMatchObject({ priority: 'normal' });

    const frame = await waitFor(() => live!.frames.find((f) => f.type === 'notification' && f.data.messageid === 'night-1'));
    expect(frame).toMatchObject({ kind: 'message', silent: true, badge: 1, title: '1 message from Alice' });

    // Nothing is dropped from the feed: the notification is there, silent, with its badge.
    const feed = await fetch(`${server.http}/v1/users/${bob.userid}/notifications`, { headers: { 'ozeki-station': bob.client.station } });
    const entries = ((await feed.json()) as { notifications: Array<{ silent: boolean; badge: number; data: { messageid?: string } }> })
      .notifications;
    expect(entries.find((n) => n.data.messageid === 'night-1')).toMatchObject({ silent: true, badge: 1 });
  });

  it('outside the hours (the same hours in a zone where it is day) the next message alerts with badge 2', async () => {
    const zone = dayZone();
    const set = await bob.client.ok('chatpreferences', { action: 'set', quiethours: { ...NIGHTS, timezone: zone } });
    expect(set.preferences).toMatchObject({ silentnow: false });

    await alice.client.addMessage(conversationId, 'day-1', 'aGVsbG8=');
    await waitFor(
      () => doubles.apns.pushesTo(iphone).length === 2 && doubles.fcm.messagesTo(android).length === 2,
      5000,
      'the pushes of the day message',
    );
    const apns = doubles.apns.pushesTo(iphone)[1];
    expect(apns.pushType).toBe('alert');
    expect(apns.payload.aps).toEqual({
      alert: { title: '2 messages from Alice', body: '' },
      badge: 2,
      sound: 'default',
      'thread-id': conversationId,
    });
    const fcm = doubles.fcm.messagesTo(android)[1];
    expect(fcm.message.notification).toEqual({ title: '2 messages from Alice', body: '' });
    const frame = await waitFor(() => live!.frames.find((f) => f.type === 'notification' && f.data.messageid === 'day-1'));
    expect(frame).toMatchObject({ silent: false, badge: 2 });
  });

  it('quiet hours taken away (null): messages alert again', async () => {
    await bob.client.ok('chatpreferences', { action: 'set', quiethours: { ...NIGHTS, timezone: nightZone() } });
    await bob.client.ok('chatpreferences', { action: 'set', quiethours: null });
    await alice.client.addMessage(conversationId, 'after-1', 'aGVsbG8=');
    const frame = await waitFor(() => live!.frames.find((f) => f.type === 'notification' && f.data.messageid === 'after-1'));
    expect(frame).toMatchObject({ silent: false, badge: 3 });
  });
});

describe('when quiet hours hold', () => {
  // 2024-06-14 is a Friday; Budapest is UTC+2 then.
  const at = (local: string) => Date.parse(`${local}+02:00`);
  const fridayNights: QuietHours = { start: '22:00', end: '07:00', timeZone: 'Europe/Budapest', days: ['fri'] };

  it('a period past midnight belongs to the day it starts on', () => {
    expect(isQuietAt(fridayNights, at('2024-06-14T21:59:00'))).toBe(false);
    expect(isQuietAt(fridayNights, at('2024-06-14T22:00:00'))).toBe(true);
    expect(isQuietAt(fridayNights, at('2024-06-15T06:59:00'))).toBe(true); // Saturday morning: Friday's night
    expect(isQuietAt(fridayNights, at('2024-06-15T07:00:00'))).toBe(false);
    expect(isQuietAt(fridayNights, at('2024-06-14T03:00:00'))).toBe(false); // Friday morning: Thursday's night
    expect(isQuietAt(fridayNights, at('2024-06-15T23:00:00'))).toBe(false); // Saturday night is not chosen
  });

  it('a period within a day runs from start to end on its days', () => {
    const lunch: QuietHours = { start: '12:00', end: '13:30', timeZone: 'Europe/Budapest', days: ['mon', 'fri'] };
    expect(isQuietAt(lunch, at('2024-06-14T12:00:00'))).toBe(true);
    expect(isQuietAt(lunch, at('2024-06-14T13:29:00'))).toBe(true);
    expect(isQuietAt(lunch, at('2024-06-14T13:30:00'))).toBe(false);
    expect(isQuietAt(lunch, at('2024-06-13T12:30:00'))).toBe(false); // Thursday
  });

  it('the zone is the user’s own: the same instant is night in Tokyo and afternoon in New York', () => {
    const instant = Date.parse('2024-06-14T18:00:00Z'); // 03:00 in Tokyo, 14:00 in New York
    const nights = { start: '22:00', end: '07:00', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as QuietHours['days'] };
    expect(isQuietAt({ ...nights, timeZone: 'Asia/Tokyo' }, instant)).toBe(true);
    expect(isQuietAt({ ...nights, timeZone: 'America/New_York' }, instant)).toBe(false);
  });
});
