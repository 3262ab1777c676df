import { AsyncResource } from 'node:async_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import webPush from 'web-push';
import { ApnsChannel } from '../src/channels/apns/channel.ts';
import { streamOptions } from '../src/channels/apns/stream-options.ts';
import { pushThreadResourceLimits } from '../src/channels/push-thread/heap.ts';
import { installLeanAsyncBind } from '../src/channels/lean-async-bind.ts';
import { VapidAuthorization } from '../src/channels/webpush/vapid-authorization.ts';
import { sendOne, type PushTarget } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import type { ApnsPushRecord } from './mocks/apns.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

/*
 * Each push-side performance trick has an environment switch that turns it off (README,
 * "Mobile push": "Turning the fast paths off"); with it off, the pushes are the same.
 */

function notification(): Notification {
  return {
    id: crypto.randomUUID(),
    userId: 'bob',
    seq: 3,
    type: 'message',
    conversationId: 'c-1',
    senderId: 'alice',
    title: '2 messages from Alice',
    body: '',
    badge: 2,
    silent: false,
    data: {},
    createdAt: Date.now(),
  };
}

const target = (token: string): PushTarget => ({ station: 's', userId: 'bob', platform: 'ios', provider: 'apns', token });

describe('the push fast paths, each turned off by its switch', () => {
  let doubles: PushDoubles;

  beforeAll(async () => {
    doubles = await startPushDoubles();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    await doubles?.close();
  });

  function apnsChannel(): ApnsChannel {
    const { keyPem, keyId, teamId, topic, url, caPem } = doubles.apns;
    return new ApnsChannel({ keyPem, keyId, teamId, topic, url, ca: caPem });
  }

  /** One notification to three devices: the outcomes and what the double received. */
  async function pushToThreeDevices(channel: ApnsChannel) {
    const n = notification();
    const tokens = [apnsToken(), apnsToken(), apnsToken()];
    const outcomes = await Promise.all(tokens.map((token) => sendOne(channel, target(token), n)));
    const received = tokens.map((token) => doubles.apns.pushesTo(token)[0]);
    return { n, outcomes, received };
  }

  it("HERALD_NO_PUSH_PAYLOAD_CACHE=1: Bob's three iPhones get the same push, prepared for each of them", async () => {
    const cached = apnsChannel();
    vi.stubEnv('HERALD_NO_PUSH_PAYLOAD_CACHE', '1');
    const uncached = apnsChannel();
    try {
      const before = await pushToThreeDevices(cached);
      const after = await pushToThreeDevices(uncached);
      for (const { n, outcomes, received } of [before, after]) {
        expect(outcomes).toEqual(Array(3).fill({ kind: 'delivered', detail: `200 apns-id ${n.id}` }));
        for (const push of received)
          expect(push).toMatchObject({ apnsId: n.id, pushType: 'alert', priority: 10, payload: { aps: { badge: 2 } } });
      }
      // Prepared once, the devices share one outcome object; prepared per device, each has its own.
      expect(before.outcomes[1]).toBe(before.outcomes[0]);
      expect(after.outcomes[1]).not.toBe(after.outcomes[0]);
      // The same push but for the notification's id (and its expiry, a moment later).
      const content = ({ topic, pushType, priority, collapseId, payload: { id: _id, ...payload } }: ApnsPushRecord) => ({
        topic,
        pushType,
        priority,
        collapseId,
        payload,
      });
      expect(after.received.map(content)).toEqual(before.received.map(content));
    } finally {
      await cached.close();
      await uncached.close();
    }
  });

  it('HERALD_NO_PREFILLED_STREAM_OPTIONS=1: node:http2 fills in the stream priority itself, and pushes go as before', async () => {
    expect(streamOptions({})).toMatchObject({ endStream: false, weight: 16, parent: 0, exclusive: false, silent: false });
    expect(streamOptions({ HERALD_NO_PREFILLED_STREAM_OPTIONS: '1' })).toEqual({ endStream: false });
    vi.stubEnv('HERALD_NO_PREFILLED_STREAM_OPTIONS', '1');
    const channel = apnsChannel();
    try {
      const { n, outcomes } = await pushToThreeDevices(channel);
      expect(outcomes).toEqual(Array(3).fill({ kind: 'delivered', detail: `200 apns-id ${n.id}` }));
    } finally {
      await channel.close();
    }
  });

  it("HERALD_NO_LARGE_YOUNG_GENERATION=1: a push thread keeps V8's heap defaults", () => {
    expect(pushThreadResourceLimits({})).toEqual({ maxYoungGenerationSizeMb: 192 });
    expect(pushThreadResourceLimits({ HERALD_NO_LARGE_YOUNG_GENERATION: '1' })).toBeUndefined();
  });

  it("HERALD_NO_LEAN_BIND=1: Node's AsyncResource#bind stays as it is", () => {
    const nodeBind = AsyncResource.prototype.bind;
    expect(installLeanAsyncBind({ HERALD_NO_LEAN_BIND: '1' })).toBe(false);
    expect(AsyncResource.prototype.bind).toBe(nodeBind);
  });

  it('HERALD_NO_VAPID_TOKEN_CACHE=1: every Web Push gets a VAPID token of its own', () => {
    const keys = webPush.generateVAPIDKeys();
    const origin = 'https://push.example.org';
    const kept = new VapidAuthorization(keys, 'mailto:admin@example.org', {});
    expect(kept.header(origin)).toBe(kept.header(origin));
    const fresh = new VapidAuthorization(keys, 'mailto:admin@example.org', { HERALD_NO_VAPID_TOKEN_CACHE: '1' });
    const [first, second] = [fresh.header(origin), fresh.header(origin)];
    // ES256 signatures differ each time; the token says the same.
    expect(first).not.toBe(second);
    expect(first).toMatch(/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
    const claims = (header: string) =>
      JSON.parse(Buffer.from(header.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(claims(second)).toEqual(claims(first));
  });
});
