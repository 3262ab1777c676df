import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webPush from 'web-push';
import { WebPushChannel } from '../src/channels/webpush/channel.ts';
import { sendOne } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';

function message(overrides: Partial<Notification> = {}): Notification {
  return {
    id: '0190f0a0-0000-7000-8000-000000000001',
    userId: 'bob',
    seq: 7,
    type: 'message',
    conversationId: 'c-1',
    senderId: 'alice',
    title: '1 message from Alice',
    body: '',
    badge: 1,
    silent: false,
    data: {},
    createdAt: Date.now(),
    ...overrides,
  };
}

describe('what each Web Push service answer means to the outbox', () => {
  let pushService: WebPushMock;
  let channel: WebPushChannel;
  const browser = new TestBrowser();

  beforeAll(async () => {
    pushService = await startWebPushMock();
    channel = new WebPushChannel({
      keys: webPush.generateVAPIDKeys(),
      subject: 'https://herald.example.org/contact',
      ca: pushService.caPem,
      allowPrivateEndpoints: true,
    });
  });
  afterAll(async () => {
    await channel?.close();
    await pushService?.close();
  });

  function target(endpoint: string) {
    const { keys } = browser.subscription(endpoint);
    return { station: 's', userId: 'bob', platform: 'browser', provider: 'webpush' as const, token: endpoint, keys };
  }

  it.each([
    [404, 'dead', 'subscription gone'],
    [410, 'dead', 'subscription gone'],
    [413, 'failed', 'payload too large'],
    [400, 'failed', '400'],
    [401, 'failed', 'VAPID'],
    [403, 'failed', 'VAPID'],
    [429, 'retry', '429'],
    [500, 'retry', '500'],
    [503, 'retry', '503'],
  ] as const)('%i is %s', async (status, kind, reason) => {
    const endpoint = pushService.subscribe();
    pushService.failNext({ status, endpoint, retryAfter: status === 503 ? 7 : undefined });
    const outcome = await sendOne(channel, target(endpoint), message());
    expect(outcome.kind).toBe(kind);
    if (outcome.kind !== 'delivered') expect(outcome.reason).toContain(reason);
    if (status === 503) expect(outcome).toMatchObject({ afterMs: 7000 });
  });

  it('a subscription bound to another applicationServerKey is refused with 403 and fails', async () => {
    const endpoint = pushService.subscribe(webPush.generateVAPIDKeys().publicKey);
    const outcome = await sendOne(channel, target(endpoint), message());
    expect(outcome).toMatchObject({ kind: 'failed' });
    expect(pushService.messagesTo(endpoint)).toEqual([]);
  });

  it('a silent notification goes with low urgency and the https subject, and a newer one replaces it by Topic', async () => {
    const endpoint = pushService.subscribe();
    expect(await sendOne(channel, target(endpoint), message({ silent: true }))).toMatchObject({ kind: 'delivered' });
    expect(await sendOne(channel, target(endpoint), message({ seq: 8, badge: 2 }))).toMatchObject({ kind: 'delivered' });
    const [silent, alert] = pushService.messagesTo(endpoint);
    expect(silent.urgency).toBe('low');
    expect(browser.decrypt(silent.body)).toMatchObject({ silent: true, seq: 7 });
    expect(alert.urgency).toBe('high');
    expect(alert.topic).toBe(silent.topic);
    expect(silent.vapid.sub).toBe('https://herald.example.org/contact');
    expect(alert.vapid.exp - Date.now() / 1000).toBeLessThanOrEqual(24 * 3600);
  });

  it('an unreachable push service is retried later', async () => {
    const endpoint = pushService.subscribe().replace(/:\d+\//, ':1/');
    expect(await sendOne(channel, target(endpoint), message())).toMatchObject({ kind: 'retry' });
  });
});
