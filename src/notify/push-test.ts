import { randomUUID } from 'node:crypto';
import { sendOne, type PushChannel, type PushProvider, type SendOutcome } from '../model/channel.ts';
import type { Notification } from '../model/notification.ts';
import type { DevicesTable } from '../store/schema.ts';
import { badRequest, notFound } from '../errors.ts';

export interface TestPushResult {
  station: string;
  provider: string;
  outcome: SendOutcome;
}

/** What a test push needs: chosen in app.ts. */
export interface TestPushParts {
  deviceOf(station: string): Promise<DevicesTable | undefined>;
  /** The user's unread total, which the push carries as its badge. */
  badgeOf(userId: string): Promise<number>;
  /** Opens the channel of a provider for this one push, or says why there is none. */
  openChannel(provider: string): Promise<PushChannel | { unavailable: string }>;
}

/**
 * `herald push test <station>`: sends one push straight to the device's provider (not
 * through the outbox) and reports the provider's answer. The device is left as it is,
 * even when the provider calls its token dead. `station` has been checked by the caller.
 */
export async function sendTestPush(parts: TestPushParts, station: string): Promise<TestPushResult> {
  const device = await parts.deviceOf(station);
  if (!device) throw notFound(`no device with station ${station}`);
  if (!device.push_provider || !device.push_token) {
    throw badRequest(
      `device ${station} (${device.platform}) has no push token; register one with chatdevice/register or PUT /v1/users/<id>/devices/<station>`,
    );
  }
  const badge = await parts.badgeOf(device.user_id);
  const channel = await parts.openChannel(device.push_provider);
  if ('unavailable' in channel) throw badRequest(channel.unavailable);
  const notification: Notification = {
    id: randomUUID(),
    userId: device.user_id,
    seq: 0,
    type: 'test',
    conversationId: null,
    senderId: null,
    title: 'Herald test push',
    body: `Sent by herald push test at ${new Date().toISOString()}`,
    badge,
    silent: false,
    data: {},
    createdAt: Date.now(),
  };
  try {
    const outcome = await sendOne(
      channel,
      {
        station,
        userId: device.user_id,
        platform: device.platform,
        provider: device.push_provider as PushProvider,
        token: device.push_token,
        keys: device.push_keys ? (JSON.parse(device.push_keys) as Record<string, string>) : undefined,
      },
      notification,
    );
    return { station, provider: device.push_provider, outcome };
  } finally {
    await channel.close();
  }
}
