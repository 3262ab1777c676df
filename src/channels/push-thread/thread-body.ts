import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import type { Notification } from '../../model/notification.ts';
import type { SendOutcome } from '../../model/channel.ts';
import { installLeanAsyncBind } from '../lean-async-bind.ts';
import type { FromThread, ThreadData, ToThread } from './threaded-channel.ts';

/* The worker side of a ThreadedPushChannel: the provider's channel, fed in batches. */

/** What a push thread needs of the provider's channel. */
export interface ThreadSender {
  /** send() for a caller that knows only the device token: APNs and FCM need nothing else. */
  sendToToken<C>(token: string, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void;
  /** Answers what it still holds (with a retry) and closes its connection. */
  close(): Promise<void>;
}

/**
 * Runs this worker thread as a push thread: opens the channel with `open` (a failure is the
 * start's error on the main thread), sends what the main thread hands over and sends the
 * answers back in batches. Called once, at the top of the provider's body module.
 */
export async function servePushThread(open: (config: Config, log: Logger) => Promise<ThreadSender>): Promise<void> {
  // Before any HTTP/2 request: see lean-async-bind.ts. Nothing but the channel runs here.
  installLeanAsyncBind();

  const port = parentPort!;
  const { config } = workerData as ThreadData;
  const post = (message: FromThread) => port.postMessage(message);

  /** What the channel logs goes to the main thread's logger. */
  const forward =
    (level: 'warn' | 'error') =>
    (fields: unknown, message?: string): void => {
      const plain: Record<string, unknown> = {};
      if (fields && typeof fields === 'object') {
        for (const [key, value] of Object.entries(fields)) {
          plain[key] = value instanceof Error ? { message: value.message, code: (value as NodeJS.ErrnoException).code } : value;
        }
      }
      post({ type: 'log', level, fields: plain, message: message ?? (typeof fields === 'string' ? fields : '') });
    };
  const log = { warn: forward('warn'), error: forward('error'), info: () => {}, debug: () => {} } as unknown as Logger;

  let delivered: number[] = [];
  let other: Array<[number, SendOutcome]> = [];
  let flushing = false;

  const flush = (): void => {
    flushing = false;
    if (delivered.length === 0 && other.length === 0) return;
    post({ type: 'answers', delivered, other });
    delivered = [];
    other = [];
  };

  const answered = (outcome: SendOutcome, number: number): void => {
    // A delivered push goes back as its number alone; the main thread answers it without detail.
    if (outcome.kind === 'delivered') delivered.push(number);
    else other.push([number, outcome]);
    if (!flushing) {
      flushing = true;
      // Answers that arrive in the same turn of the event loop go back together.
      setImmediate(flush);
    }
  };

  let channel: ThreadSender;
  try {
    channel = await open(config, log);
  } catch (error) {
    post({ type: 'failed', message: (error as Error).message });
    process.exit(1);
  }

  port.on('message', (message: ToThread) => {
    if (message.type === 'close') {
      // Closing answers what the channel still holds (with a retry); then the thread ends.
      void channel.close().then(() => {
        flush();
        port.close();
      });
      return;
    }
    const { notifications, pushes } = message;
    for (let i = 0; i < pushes.length; i += 3) {
      channel.sendToToken(pushes[i + 2] as string, notifications[pushes[i + 1] as number], pushes[i] as number, answered);
    }
  });
  post({ type: 'ready' });
}
