import fs from 'node:fs';
import webPush from 'web-push';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import { isInternalAddress } from '../../chat/push-subscription.ts';
import type { Notification } from '../../model/notification.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../../model/channel.ts';
import type { VapidKeys } from './vapid-keys.ts';
import { webPushRequest } from './payload.ts';
import { webPushOutcome } from './outcomes.ts';
import { InternalEndpointError } from './public-endpoints.ts';
import { PushServiceConnections } from './push-service-connections.ts';
import { VapidAuthorization } from './vapid-authorization.ts';

/*
 * Web Push for browsers whose tab is closed: RFC 8030 (the push request and its headers),
 * RFC 8291 (aes128gcm payload encryption to the subscription's keys) and RFC 8292 (VAPID).
 *
 * The `web-push` package does the encryption and signs the VAPID JWT; Herald sends the
 * request itself (push-service-connections.ts: HTTP/2 where the push service offers it, else
 * HTTP/1.1 over a keep-alive agent), trusting HERALD_CA_FILE, so every push service origin
 * keeps its connections open and a test double can stand in for the push service.
 */

export interface WebPushOptions {
  keys: VapidKeys;
  subject: string;
  ca?: string;
  log?: Logger;
  /** Allows endpoints on loopback, private and link-local addresses (HERALD_WEBPUSH_ALLOW_PRIVATE). */
  allowPrivateEndpoints?: boolean;
}

export class WebPushChannel implements PushChannel {
  readonly provider = 'webpush' as const;
  private readonly connections: PushServiceConnections;
  private readonly authorization: VapidAuthorization;

  constructor(private readonly options: WebPushOptions) {
    this.connections = new PushServiceConnections(options);
    this.authorization = new VapidAuthorization(options.keys, options.subject);
  }

  /** The channel for this node's configuration, signing with `keys` (see loadVapidKeys). */
  static fromConfig(config: Config, keys: VapidKeys, log?: Logger): WebPushChannel {
    return new WebPushChannel({
      keys,
      subject: config.vapid.subject,
      ca: config.caFile ? fs.readFileSync(config.caFile, 'utf8') : undefined,
      log,
      allowPrivateEndpoints: config.vapid.allowPrivateEndpoints,
    });
  }

  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    this.deliver(target, notification).then(
      (outcome) => done(outcome, context),
      (error: Error) => done({ kind: 'retry', reason: `send failed: ${error.message}` }, context),
    );
  }

  /** Encrypts and posts the push; rejects only when it cannot be built (the outcome is then a retry). */
  private async deliver(target: PushTarget, notification: Notification): Promise<SendOutcome> {
    const p256dh = target.keys?.p256dh;
    const auth = target.keys?.auth;
    if (!p256dh || !auth) return { kind: 'dead', reason: 'the subscription has no p256dh and auth keys' };
    let endpoint: URL;
    try {
      endpoint = new URL(target.token);
    } catch {
      return { kind: 'dead', reason: 'the subscription endpoint is not a URL' };
    }
    const host = endpoint.hostname.replace(/^\[|\]$/g, '');
    if (!this.options.allowPrivateEndpoints && isInternalAddress(host)) {
      return { kind: 'dead', reason: new InternalEndpointError(host, host).message };
    }
    const request = webPushRequest(notification);
    const encrypted = webPush.encrypt(p256dh, auth, request.payload, 'aes128gcm');
    const headers: Record<string, string | number> = {
      ttl: request.ttl,
      urgency: request.urgency,
      'content-encoding': 'aes128gcm',
      'content-type': 'application/octet-stream',
      'content-length': encrypted.cipherText.length,
      authorization: this.authorization.header(endpoint.origin),
    };
    if (request.topic) headers.topic = request.topic;
    try {
      const answer = await this.connections.post(endpoint, headers, encrypted.cipherText);
      return webPushOutcome(answer.status, answer.body, answer.retryAfter);
    } catch (error) {
      if (error instanceof InternalEndpointError) return { kind: 'dead', reason: error.message };
      return { kind: 'retry', reason: `Web Push ${endpoint.origin}: ${(error as Error).message}` };
    }
  }

  async close(): Promise<void> {
    await this.connections.close();
  }
}
