import { AsyncResource } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FcmChannel } from '../src/channels/fcm/channel.ts';
import { sendOne, type PushTarget } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import { startFcmMock, type FcmMock } from './mocks/fcm.ts';
import { fcmToken } from './mocks/push-env.ts';
import { waitFor } from './helpers/server.ts';

function notification(badge: number): Notification {
  return {
    id: crypto.randomUUID(),
    userId: 'u1',
    seq: badge,
    type: 'message',
    conversationId: 'conversation-1',
    senderId: 'alice',
    title: '1 message from Alice',
    body: '',
    badge,
    silent: false,
    data: {},
    createdAt: Date.now(),
  };
}

function target(token: string): PushTarget {
  return { station: 's'.repeat(32), userId: 'u1', platform: 'android', provider: 'fcm', token };
}

describe('FCM messages travel as concurrent streams of one HTTP/2 connection', () => {
  let double: FcmMock;
  let fcm: FcmChannel;

  beforeAll(async () => {
    double = await startFcmMock();
    fcm = new FcmChannel({ account: double.serviceAccount as never, url: double.url, ca: double.caPem });
  });

  afterAll(async () => {
    await fcm?.close();
    await double?.close();
  });

  it('200 pushes sent at once arrive over one connection, many in flight together, no message over HTTP/1.1', async () => {
    const nodeBind = AsyncResource.prototype.bind;
    const tokens = Array.from({ length: 200 }, () => fcmToken());
    const outcomes = await Promise.all(tokens.map((token, i) => sendOne(fcm, target(token), notification(i + 1))));
    expect(outcomes.every((o) => o.kind === 'delivered')).toBe(true);
    expect(new Set(double.messages.map((m) => m.token))).toEqual(new Set(tokens));
    expect(double.http2Sessions).toBe(1);
    expect(double.http1Sends).toBe(0);
    expect(double.peakSends).toBeGreaterThan(1);
    // The lean bind is set around each stream's opening only: Node's own is back for everyone else.
    expect(AsyncResource.prototype.bind).toBe(nodeBind);
  });

  it('a connection the double drops is replaced by a new one, and the push that met the lost one is only retried', async () => {
    expect(double.http2Sessions).toBe(1);
    double.dropConnections();
    // The channel may learn of the loss only when it tries the old connection: that push
    // comes back as a retry (the outbox sends it again), never as delivered or dead.
    const outcomes = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const outcome = await sendOne(fcm, target(fcmToken()), notification(1));
      outcomes.push(outcome.kind);
      if (outcome.kind === 'delivered') break;
    }
    expect(outcomes.at(-1)).toBe('delivered');
    expect(outcomes.slice(0, -1).every((kind) => kind === 'retry')).toBe(true);
    expect(double.http2Sessions).toBe(2);
  });

  it('a message still unanswered when the channel closes comes back as a retry, never as a failure', async () => {
    const closing = new FcmChannel({ account: double.serviceAccount as never, url: double.url, ca: double.caPem });
    expect((await sendOne(closing, target(fcmToken()), notification(1))).kind).toBe('delivered');
    double.hold();
    try {
      const unanswered = sendOne(closing, target(fcmToken()), notification(2));
      await waitFor(() => double.held() === 1, 5000, 'the double to hold the message');
      // The double never answers: close() waits out its grace, then drops the connection.
      await closing.close();
      expect(await unanswered).toMatchObject({ kind: 'retry' });
    } finally {
      double.release();
    }
  });
});

describe("FCM's answer to a delivered message", () => {
  let double: FcmMock;
  let detailed: FcmChannel;

  beforeAll(async () => {
    double = await startFcmMock();
    detailed = new FcmChannel({ account: double.serviceAccount as never, url: double.url, ca: double.caPem });
  });

  afterAll(async () => {
    await detailed?.close();
    await double?.close();
  });

  it("a delivered message carries FCM's message name, unless the sender (a push thread) asks for none", async () => {
    const token = fcmToken();
    const outcome = await sendOne(detailed, target(token), notification(1));
    expect(outcome).toEqual({ kind: 'delivered', detail: expect.stringMatching(/^200 projects\/herald-test\/messages\/[0-9a-f]{16}$/) });
    const bare = new FcmChannel({ account: double.serviceAccount as never, url: double.url, ca: double.caPem, deliveredDetail: false });
    try {
      expect(await sendOne(bare, target(token), notification(2))).toEqual({ kind: 'delivered' });
      // Not reading the answer changes nothing else: a refusal is read in full.
      double.unregister(token);
      expect(await sendOne(bare, target(token), notification(3))).toMatchObject({
        kind: 'dead',
        reason: expect.stringContaining('UNREGISTERED'),
      });
    } finally {
      await bare.close();
    }
    expect(double.messagesTo(token)).toHaveLength(2);
  });
});
