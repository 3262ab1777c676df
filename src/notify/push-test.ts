import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Store } from '../store/db.ts';
import { sendOne, type PushProvider, type SendOutcome } from '../model/channel.ts';
import { badRequest, notFound } from '../errors.ts';
import { checkStation } from '../chat/devices.ts';
import { feedHead } from './feed.ts';
import type { Notification } from '../model/notification.ts';
import { openPushChannels, unconfiguredReason } from './outbox.ts';

export interface TestPushResult {
  station: string;
  provider: string;
  outcome: SendOutcome;
}

/**
 * `herald push test <station>`: sends one push straight to the device's provider (not
 * through the outbox) and reports the provider's answer. The device is left as it is,
 * even when the provider calls its token dead.
 */
export async function sendTestPush(config: Config, store: Store, stationText: string, log?: Logger): Promise<TestPushResult> {
  const station = checkStation(stationText);
  const device = await store.db.selectFrom('devices').selectAll().where('station', '=', station).executeTakeFirst();
  if (!device) throw notFound(`no device with station ${station}`);
  if (!device.push_provider || !device.push_token) {
    throw badRequest(`device ${station} (${device.platform}) has no push token; register one with chatdevice/register or PUT /v1/users/<id>/devices/<station>`);
  }
  const unconfigured = unconfiguredReason(config, device.push_provider);
  if (unconfigured) throw badRequest(unconfigured);
  const { badge } = await feedHead(store.db, device.user_id);
  const channel = (await openPushChannels(config, log)).find((c) => c.provider === device.push_provider);
  if (!channel) throw badRequest(`no push channel for provider ${device.push_provider}`);
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
