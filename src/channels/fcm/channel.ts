import fs from 'node:fs';
import type http2 from 'node:http2';
import https from 'node:https';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import type { Notification } from '../../model/notification.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../../model/channel.ts';
import { FcmBodies } from './payload.ts';
import { fcmOutcome, readFcmAnswer } from './outcomes.ts';
import { AccessTokens, parseServiceAccount, type ServiceAccount } from './service-account.ts';
import { Http2Origin, type Http2Answer } from '../http2-origin.ts';

/*
 * Firebase Cloud Messaging HTTP v1: an OAuth access token from the service account (RS256
 * JWT grant to the account's token_uri), then one POST per message. FCM has no batch
 * endpoint any more: the messages go as concurrent streams of one HTTP/2 connection, as
 * APNs pushes do (64 keep-alive HTTP/1.1 sockets reached 0.67x a bare node:http2 client
 * against the FCM double; see BENCHMARKS.md, "Scale-out (issue 18)").
 */

/** HTTPS connections to the token endpoint (one access token an hour). */
const TOKEN_SOCKETS = 2;

export interface FcmOptions {
  account: ServiceAccount;
  /**
   * Whether a delivered message's outcome carries FCM's answer (`200 projects/…/messages/…`,
   * read from its body), as `herald push test` prints it. A push thread hands back delivered
   * pushes as bare numbers, so it reads no body of a 200 answer.
   */
  deliveredDetail?: boolean;
  /** Origin, e.g. https://fcm.googleapis.com */
  url: string;
  ca?: string;
  log?: Logger;
}

/** One message on its way: its body, and whom to tell how it went. */
class FcmSend {
  /** A new access token was fetched for it after FCM refused the one it was sent with. */
  refreshed = false;

  constructor(
    readonly body: string,
    private readonly context: unknown,
    /** The context's type is the sender's own (PushChannel.send is generic over it), so it is handed back `as never`. */
    private readonly done: (outcome: SendOutcome, context: never) => void,
  ) {}

  finish(outcome: SendOutcome): void {
    this.done(outcome, this.context as never);
  }
}

export class FcmChannel implements PushChannel {
  readonly provider = 'fcm' as const;
  private readonly agent: https.Agent;
  private readonly accessTokens: AccessTokens;
  private readonly sendPath: string;
  private readonly fcm: Http2Origin;
  private readonly bodies = new FcmBodies();
  private readonly deliveredDetail: boolean;
  /** The request headers of the current access token. */
  private headers?: { token: string; headers: http2.OutgoingHttpHeaders };

  constructor(options: FcmOptions) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: TOKEN_SOCKETS, ...(options.ca ? { ca: options.ca } : {}) });
    this.accessTokens = new AccessTokens(options.account, this.agent);
    const sendUrl = new URL(`/v1/projects/${options.account.project_id}/messages:send`, options.url);
    this.sendPath = sendUrl.pathname;
    this.deliveredDetail = options.deliveredDetail ?? true;
    this.fcm = new Http2Origin(sendUrl.origin, {
      name: 'FCM',
      ca: options.ca,
      log: options.log,
      // FCM's 200 body holds only the message's name.
      unreadBodyStatus: this.deliveredDetail ? undefined : 200,
    });
  }

  static async fromConfig(config: Config, log?: Logger, options: Pick<FcmOptions, 'deliveredDetail'> = {}): Promise<FcmChannel> {
    const fcm = config.fcm;
    if (!fcm) throw new Error('FCM is not configured');
    let text: string;
    try {
      text = fs.readFileSync(fcm.serviceAccountFile, 'utf8');
    } catch (error) {
      throw new Error(`HERALD_FCM_SERVICE_ACCOUNT ${fcm.serviceAccountFile} cannot be read: ${(error as Error).message}`, { cause: error });
    }
    const account = parseServiceAccount(text, `HERALD_FCM_SERVICE_ACCOUNT ${fcm.serviceAccountFile}`);
    const channel = new FcmChannel({
      account,
      url: fcm.url,
      ca: config.caFile ? fs.readFileSync(config.caFile, 'utf8') : undefined,
      log,
      ...options,
    });
    try {
      await channel.accessTokens.key;
    } catch (error) {
      throw new Error(`the private_key of ${fcm.serviceAccountFile} is not a PKCS#8 RSA key: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return channel;
  }

  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    this.sendToToken(target.token, notification, context, done);
  }

  /** send() for a caller that knows only the registration token (the push thread): FCM needs nothing else. */
  sendToToken<C>(token: string, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    this.post(new FcmSend(this.bodies.body(notification, token), context, done));
  }

  /** Posts the message with the current access token (fetched first when there is none at hand). */
  private post(send: FcmSend): void {
    const token = this.accessTokens.fresh();
    if (token !== undefined) return this.fcm.post(this.headersFor(token), send.body, send, this.answered);
    this.accessTokens.current().then(
      (fetched) => this.fcm.post(this.headersFor(fetched), send.body, send, this.answered),
      (error: Error) => send.finish({ kind: 'retry', reason: `FCM: ${error.message}` }),
    );
  }

  /** The request headers for an access token, one object while the token lasts (node:http2 only reads them). */
  private headersFor(token: string): http2.OutgoingHttpHeaders {
    if (this.headers?.token !== token) {
      const headers = {
        ':method': 'POST',
        ':path': this.sendPath,
        authorization: `Bearer ${token}`,
        'content-type': 'application/json; charset=utf-8',
      };
      this.headers = { token, headers };
    }
    return this.headers.headers;
  }

  /** FCM answered a message, or it failed: fetches a new access token once when FCM refuses the current one. */
  private readonly answered = (error: Error | undefined, response: Http2Answer | undefined, send: FcmSend): void => {
    if (error) return send.finish({ kind: 'retry', reason: `FCM: ${error.message}` });
    if (response!.status === 200 && !this.deliveredDetail) return send.finish(DELIVERED);
    const answer = readFcmAnswer(response!.status, response!.body, response!.headers['retry-after']);
    if (answer.status === 401 && answer.errorCode !== 'THIRD_PARTY_AUTH_ERROR' && !send.refreshed) {
      // The access token was refused (revoked or expired early): fetch a new one once.
      send.refreshed = true;
      this.accessTokens.refused();
      return this.post(send);
    }
    send.finish(fcmOutcome(answer));
  };

  async close(): Promise<void> {
    this.agent.destroy();
    await this.fcm.close();
  }
}

const DELIVERED: SendOutcome = Object.freeze({ kind: 'delivered' });
