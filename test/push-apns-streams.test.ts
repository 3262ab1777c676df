import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApnsChannel } from '../src/channels/apns/channel.ts';
import { APNS_MAX_STREAMS } from '../src/channels/apns/connection.ts';
import { sendOne, type PushTarget } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import { startApnsMock, type ApnsMock } from './mocks/apns.ts';
import { apnsToken } from './mocks/push-env.ts';
import { waitFor } from './helpers/server.ts';

function notification(): Notification {
  return {
    id: crypto.randomUUID(),
    userId: 'u1',
    seq: 1,
    type: 'message',
    conversationId: 'conversation-1',
    senderId: 'alice',
    title: '1 message from Alice',
    body: '',
    badge: 1,
    silent: false,
    data: {},
    createdAt: Date.now(),
  };
}

describe('streams of an APNs connection', () => {
  let apns: ApnsMock;
  let channel: ApnsChannel;

  beforeAll(async () => {
    // A peer that allows twice as many streams as Herald uses.
    apns = await startApnsMock({ maxConcurrentStreams: APNS_MAX_STREAMS * 2, record: false });
    channel = new ApnsChannel({
      keyPem: apns.keyPem,
      keyId: apns.keyId,
      teamId: apns.teamId,
      topic: apns.topic,
      url: apns.url,
      ca: apns.caPem,
    });
  });
  afterAll(async () => {
    await channel?.close();
    await apns?.close();
  });

  it('a burst uses at most 500 streams of its connection, even when APNs allows more, and every push arrives', async () => {
    expect(APNS_MAX_STREAMS).toBe(500);
    const target = (token: string): PushTarget => ({ station: 's', userId: 'u1', platform: 'ios', provider: 'apns', token });
    // The first push proves the provider token; until then one stream only.
    expect((await sendOne(channel, target(apnsToken()), notification())).kind).toBe('delivered');
    apns.hold();
    const burst = APNS_MAX_STREAMS + 200;
    const sent = Promise.all(Array.from({ length: burst }, () => sendOne(channel, target(apnsToken()), notification())));
    await waitFor(() => apns.held() >= APNS_MAX_STREAMS, 20_000, `${APNS_MAX_STREAMS} pushes to be held`);
    apns.release();
    const outcomes = await sent;
    expect(outcomes.filter((o) => o.kind === 'delivered')).toHaveLength(burst);
    expect(apns.peakStreams).toBe(APNS_MAX_STREAMS);
    expect(apns.connections).toBe(1);
  });
});
