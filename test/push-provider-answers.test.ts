import http2 from 'node:http2';
import { importPKCS8, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApnsChannel } from '../src/channels/apns/channel.ts';
import { apnsOutcome } from '../src/channels/apns/outcomes.ts';
import { FcmChannel } from '../src/channels/fcm/channel.ts';
import { fcmOutcome, readFcmAnswer } from '../src/channels/fcm/outcomes.ts';
import { sendOne, type PushTarget } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import type { ApnsMock } from './mocks/apns.ts';
import { apnsToken, fcmToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

// PROTOCOLS.md §3: every APNs reason and the outcome it must have.
const APNS_REASONS: Array<[number, string, 'dead' | 'retry' | 'failed']> = [
  [400, 'BadCollapseId', 'failed'],
  [400, 'BadDeviceToken', 'dead'],
  [400, 'BadExpirationDate', 'failed'],
  [400, 'BadMessageId', 'failed'],
  [400, 'BadPriority', 'failed'],
  [400, 'BadTopic', 'failed'],
  [400, 'DeviceTokenNotForTopic', 'dead'],
  [400, 'DuplicateHeaders', 'failed'],
  [400, 'IdleTimeout', 'retry'],
  [400, 'InvalidPushType', 'failed'],
  [400, 'MissingDeviceToken', 'failed'],
  [400, 'MissingTopic', 'failed'],
  [400, 'PayloadEmpty', 'failed'],
  [400, 'TopicDisallowed', 'failed'],
  [403, 'BadCertificate', 'failed'],
  [403, 'BadCertificateEnvironment', 'failed'],
  [403, 'ExpiredProviderToken', 'retry'],
  [403, 'Forbidden', 'failed'],
  [403, 'InvalidProviderToken', 'failed'],
  [403, 'MissingProviderToken', 'failed'],
  [403, 'UnrelatedKeyIdInToken', 'failed'],
  [404, 'BadPath', 'failed'],
  [405, 'MethodNotAllowed', 'failed'],
  [410, 'ExpiredToken', 'dead'],
  [410, 'Unregistered', 'dead'],
  [413, 'PayloadTooLarge', 'failed'],
  [429, 'TooManyProviderTokenUpdates', 'retry'],
  [429, 'TooManyRequests', 'retry'],
  [500, 'InternalServerError', 'retry'],
  [503, 'ServiceUnavailable', 'retry'],
  [503, 'Shutdown', 'retry'],
];

// PROTOCOLS.md §4: every FCM error code and its outcome.
const FCM_CODES: Array<[string, number, 'dead' | 'retry' | 'failed', string?]> = [
  ['UNREGISTERED', 404, 'dead'],
  ['SENDER_ID_MISMATCH', 403, 'dead'],
  ['INVALID_ARGUMENT', 400, 'dead', 'message.token'],
  ['INVALID_ARGUMENT', 400, 'failed', 'message.data'],
  ['QUOTA_EXCEEDED', 429, 'retry'],
  ['UNAVAILABLE', 503, 'retry'],
  ['INTERNAL', 500, 'retry'],
  ['THIRD_PARTY_AUTH_ERROR', 401, 'failed'],
  ['UNSPECIFIED_ERROR', 400, 'failed'],
];

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

/** One alert push posted to the APNs double as any provider would, past Herald's own checks: its status and reason. */
async function postToApns(apns: ApnsMock, token: string, payload: string): Promise<{ status: number; reason?: string }> {
  const key = await importPKCS8(apns.keyPem, 'ES256');
  const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: apns.keyId }).setIssuer(apns.teamId).setIssuedAt().sign(key);
  const session = http2.connect(apns.url, { ca: apns.caPem });
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': `/3/device/${token}`,
        authorization: `bearer ${jwt}`,
        'apns-topic': apns.topic,
        'apns-push-type': 'alert',
        'apns-expiration': '0',
        'apns-id': crypto.randomUUID(),
      });
      let status = 0;
      const body: Buffer[] = [];
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (chunk: Buffer) => body.push(chunk));
      stream.on('end', () =>
        resolve({ status, ...(body.length > 0 ? (JSON.parse(Buffer.concat(body).toString('utf8')) as { reason?: string }) : {}) }),
      );
      stream.on('error', reject);
      stream.end(payload);
    });
  } finally {
    session.close();
  }
}

describe('what APNs and FCM answer, in the outbox vocabulary', () => {
  let doubles: PushDoubles;
  let apns: ApnsChannel;
  let fcm: FcmChannel;

  beforeAll(async () => {
    doubles = await startPushDoubles();
    apns = new ApnsChannel({
      keyPem: doubles.apns.keyPem,
      keyId: doubles.apns.keyId,
      teamId: doubles.apns.teamId,
      topic: doubles.apns.topic,
      url: doubles.apns.url,
      ca: doubles.apns.caPem,
    });
    fcm = new FcmChannel({ account: doubles.fcm.serviceAccount as never, url: doubles.fcm.url, ca: doubles.fcm.caPem });
  });
  afterAll(async () => {
    await apns?.close();
    await fcm?.close();
    await doubles?.close();
  });

  const apnsTarget = (token: string): PushTarget => ({ station: 's', userId: 'u1', platform: 'ios', provider: 'apns', token });
  const fcmTarget = (token: string): PushTarget => ({ station: 's', userId: 'u1', platform: 'android', provider: 'fcm', token });

  it.each(APNS_REASONS)('APNs %i %s is %s', async (status, reason, kind) => {
    expect(apnsOutcome({ status, reason }).kind).toBe(kind);
    // Answered by the double over the wire, the same reason lands on the same outcome.
    if (reason !== 'ExpiredProviderToken') {
      const token = apnsToken();
      doubles.apns.failNext({ status: status as 400, reason, token, times: 1 });
      const outcome = await sendOne(apns, apnsTarget(token), notification());
      expect(outcome.kind).toBe(kind);
      if (outcome.kind !== 'delivered') expect(outcome.reason).toContain(reason);
    }
  });

  it.each(FCM_CODES)('FCM %s (%i, field %s) is %s', async (errorCode, status, kind, field) => {
    const details: unknown[] = [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }];
    if (field) details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field }] });
    const answer = readFcmAnswer(status, JSON.stringify({ error: { code: status, message: 'x', status: 'X', details } }));
    expect(fcmOutcome(answer).kind).toBe(kind);
    if (!field) {
      const token = fcmToken();
      doubles.fcm.failNext({ errorCode: errorCode as never, token });
      expect((await sendOne(fcm, fcmTarget(token), notification())).kind).toBe(kind);
    }
  });

  it('APNs keeps one connection and one verified provider token, and reconnects after GOAWAY', async () => {
    const token = apnsToken();
    const before = doubles.apns.connections;
    expect((await sendOne(apns, apnsTarget(token), notification())).kind).toBe('delivered');
    doubles.apns.goaway('Shutdown');
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => sendOne(apns, apnsTarget(token), notification())));
    expect(outcomes.map((o) => o.kind)).toEqual(Array(20).fill('delivered'));
    expect(doubles.apns.connections).toBe(before + 1);
    expect(doubles.apns.pushesTo(token)).toHaveLength(21);
  });

  it('FCM fetches an access token once, keeps it, and fetches a new one when it is refused', async () => {
    const token = fcmToken();
    const issued = doubles.fcm.tokensIssued;
    for (let i = 0; i < 3; i++) expect((await sendOne(fcm, fcmTarget(token), notification())).kind).toBe('delivered');
    expect(doubles.fcm.tokensIssued).toBeLessThanOrEqual(Math.max(issued, 1));
    doubles.fcm.revokeAccessTokens();
    expect((await sendOne(fcm, fcmTarget(token), notification())).kind).toBe('delivered');
    expect(doubles.fcm.tokensIssued).toBe(Math.max(issued, 1) + 1);
    expect(doubles.fcm.messagesTo(token)).toHaveLength(4);
  });

  it('a payload over 4 KB is not sent, and the double would refuse it with 413 PayloadTooLarge', async () => {
    const big = notification();
    big.title = 'x'.repeat(5000);
    const accepted = doubles.apns.accepted;
    const outcome = await sendOne(apns, apnsTarget(apnsToken()), big);
    expect(outcome).toMatchObject({ kind: 'failed' });
    expect((outcome as { reason: string }).reason).toContain('4096');
    const payload = JSON.stringify({ aps: { alert: { title: 'x'.repeat(5000) } } });
    const answer = await postToApns(doubles.apns, apnsToken(), payload);
    expect(answer).toMatchObject({ status: 413, reason: 'PayloadTooLarge' });
    expect(doubles.apns.accepted).toBe(accepted);
  });
});
