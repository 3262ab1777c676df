import type { Notification } from './notification.ts';

/**
 * Every push provider answers in this one vocabulary, so the outbox never needs to know
 * a provider's own error strings.
 */
export type SendOutcome =
  | { kind: 'delivered'; detail?: string }
  | { kind: 'retry'; reason: string; afterMs?: number }
  | { kind: 'dead'; reason: string }
  | { kind: 'failed'; reason: string };

export type PushProvider = 'apns' | 'fcm' | 'webpush';

/**
 * Providers that cannot carry a silent push: a browser subscribes with `userVisibleOnly`,
 * so every Web Push must show something (Chrome shows a generic notice otherwise, Safari
 * revokes the subscription). A silent notification gets no outbox row for these devices, and
 * one made silent only at send time (a kind the device does not alert for) is cancelled.
 */
export const SILENT_PUSH_REFUSED: readonly PushProvider[] = ['webpush'];

/** The device a push goes to, as the outbox knows it. */
export interface PushTarget {
  station: string;
  userId: string;
  platform: string;
  provider: PushProvider;
  token: string;
  /** Provider-specific extras (Web Push `p256dh`/`auth`). */
  keys?: Record<string, string>;
}

/** A push provider: APNs, FCM or Web Push. */
export interface PushChannel {
  readonly provider: PushProvider;
  /**
   * Sends one push. `done` is called exactly once, with the outcome and the `context` it
   * was given (a failure is an outcome, never a throw or a rejection): the outbox has
   * thousands of pushes in flight and hands every one the same callback, so a push costs
   * no promise and no closure. sendOne() gives the outcome as a promise.
   */
  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void;
  close(): Promise<void>;
}

/** One push through `channel`, its outcome as a promise (a device's test push). */
export function sendOne(channel: PushChannel, target: PushTarget, notification: Notification): Promise<SendOutcome> {
  return new Promise((resolve) => channel.send(target, notification, undefined, resolve));
}

/** A live connection of one device: a WebSocket, a UDP endpoint or a Web3MQ socket. */
export interface LiveConnection {
  readonly userId: string;
  readonly station: string;
  /** Also the metrics label. */
  readonly channel: 'ws' | 'udp' | 'web3mq';
  /**
   * The highest sequence number of the user's feed this connection has been handed, through
   * which nothing is missing; undefined while it does not follow the feed. What a node reads
   * from the feed after a bus message may have been lost starts here.
   */
  readonly deliveredSeq?: number;
  /** `frame` is the notification's JSON text, shared by every connection of the user. */
  deliver(notification: Notification, frame: string): void;
  /** Ends the connection because its device may no longer listen (it was removed). */
  close?(reason: string): void;
}
