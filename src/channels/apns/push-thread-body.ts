import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { SendOutcome } from '../../model/channel.ts';
import type { FromThread, ThreadData, ToThread } from './thread.ts';
import { installLeanAsyncBind } from './lean-async-bind.ts';
import { ApnsChannel } from './channel.ts';

/* The worker side of a ThreadedApnsChannel: an ApnsChannel, fed in batches. */

// Before any HTTP/2 request: see lean-async-bind.ts.
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

function flush(): void {
  flushing = false;
  if (delivered.length === 0 && other.length === 0) return;
  post({ type: 'answers', delivered, other });
  delivered = [];
  other = [];
}

function answered(outcome: SendOutcome, number: number): void {
  // A delivered push goes back as its number alone; the main thread answers it without detail.
  if (outcome.kind === 'delivered') delivered.push(number);
  else other.push([number, outcome]);
  if (!flushing) {
    flushing = true;
    // Answers that arrive in the same turn of the event loop go back together.
    setImmediate(flush);
  }
}

let channel: ApnsChannel;
try {
  channel = await ApnsChannel.fromConfig(config, log);
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
    const number = pushes[i] as number;
    const notification = notifications[pushes[i + 1] as number];
    // An APNs push needs only the device token; the thread is not told the rest of the device.
    channel.sendToToken(pushes[i + 2] as string, notification, number, answered);
  }
});
post({ type: 'ready' });
