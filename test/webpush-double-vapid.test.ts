import https from 'node:https';
import { createECDH, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webPush from 'web-push';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';

/*
 * The Web Push double imports each application server key once (as a push service keeps
 * the key a subscription was made with) but still verifies every token it is sent: a token
 * that does not verify against k is refused however often k has been seen before.
 */
describe('the Web Push double verifies every VAPID token', () => {
  let pushService: WebPushMock;
  const subject = 'mailto:admin@example.org';
  const herald = webPush.generateVAPIDKeys();
  const stranger = webPush.generateVAPIDKeys();
  let endpoint: string;
  let body: Buffer;

  beforeAll(async () => {
    pushService = await startWebPushMock();
    endpoint = pushService.subscribe(herald.publicKey);
    const browser = createECDH('prime256v1');
    browser.generateKeys();
    body = webPush.encrypt(browser.getPublicKey('base64url'), randomBytes(16).toString('base64url'), 'hello', 'aes128gcm').cipherText;
  });
  afterAll(() => pushService?.close());

  function push(authorization: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const headers = { ttl: 60, 'content-encoding': 'aes128gcm', 'content-length': body.length, authorization };
      const request = https.request(endpoint, { method: 'POST', headers, ca: pushService.caPem, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  const headerOf = (keys: { publicKey: string; privateKey: string }) =>
    webPush.getVapidHeaders(pushService.origin, subject, keys.publicKey, keys.privateKey, 'aes128gcm').Authorization;

  it("accepts Herald's token, then refuses one signed by another key under Herald's k, every time", async () => {
    expect(await push(headerOf(herald))).toMatchObject({ status: 201 });
    // The stranger's token with Herald's public key as k: the signature does not match k.
    const forged = headerOf(stranger).replace(/k=[A-Za-z0-9_-]+/, `k=${herald.publicKey}`);
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await push(forged);
      expect(answer.status).toBe(401);
      expect(answer.text).toMatch(/does not verify/);
    }
    expect(await push(headerOf(herald))).toMatchObject({ status: 201 });
    expect(pushService.messagesTo(endpoint)).toHaveLength(2);
  });

  it('refuses a k that is not a P-256 point, and accepts a good one afterwards', async () => {
    const token = headerOf(herald).match(/t=([^,\s]+)/)![1];
    const badPoint = Buffer.alloc(65, 1);
    badPoint[0] = 4;
    const answer = await push(`vapid t=${token}, k=${badPoint.toString('base64url')}`);
    expect(answer.status).toBe(401);
    expect(await push(headerOf(herald))).toMatchObject({ status: 201 });
  });
});
