import { expect } from 'vitest';
import type { Worker } from 'node:worker_threads';
import type { PushChannel, PushTarget, SendOutcome } from '../../src/model/channel.ts';
import type { Notification } from '../../src/model/notification.ts';

/*
 * What the push-thread tests (APNs, FCM) share: the threads running now, and sending a list
 * of pushes through a channel with every answer checked to come once.
 */

/** The push threads running now, as Node's Worker sees them: a test stops one the way a crash would. */
export const runningThreads = new Set<Worker>();

/**
 * node:worker_threads with a Worker that enters runningThreads while it runs. A test file
 * mocks the module with it (the factory loads this file itself, as vi.mock is hoisted):
 *
 *   vi.mock('node:worker_threads', async (original) =>
 *     (await import('./helpers/push-thread.ts')).watchedWorkerThreads(await original()));
 */
export function watchedWorkerThreads(real: typeof import('node:worker_threads')) {
  class WatchedWorker extends real.Worker {
    constructor(...args: ConstructorParameters<typeof real.Worker>) {
      super(...args);
      runningThreads.add(this);
      this.once('exit', () => runningThreads.delete(this));
    }
  }
  return { ...real, default: { ...real, Worker: WatchedWorker }, Worker: WatchedWorker };
}

/** Sends each [target, notification] through `channel` and resolves to the outcomes in order. */
export function sendEach(channel: PushChannel, pushes: Array<[PushTarget, Notification]>): Promise<SendOutcome[]> {
  return new Promise((resolve) => {
    const outcomes: SendOutcome[] = new Array(pushes.length);
    let left = pushes.length;
    pushes.forEach(([target, n], i) =>
      channel.send(target, n, i, (outcome, index) => {
        // Each push is answered exactly once.
        expect(outcomes[index]).toBeUndefined();
        outcomes[index] = outcome;
        if (--left === 0) resolve(outcomes);
      }),
    );
  });
}
