import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { loadConfig, type Config } from '../../src/config.ts';
import type { ThreadedPushChannel } from '../../src/channels/push-thread/threaded-channel.ts';
import { startPushDoubles, type PushDoubles } from '../mocks/push-env.ts';
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

/**
 * The set-up of a push-thread test file: the push service doubles and a data directory for
 * the file, and the channel a test starts (`threads.channel = …`), which is closed after each
 * test with whatever the doubles held back let go first.
 */
export function usePushThreads(prefix: string) {
  const state: { doubles?: PushDoubles; dataDir?: string; channel?: ThreadedPushChannel } = {};
  beforeAll(async () => {
    state.doubles = await startPushDoubles();
    state.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(async () => {
    state.doubles?.apns.release();
    state.doubles?.fcm.release();
    await state.channel?.close();
    state.channel = undefined;
  });
  afterAll(async () => {
    await state.doubles?.close();
    if (state.dataDir) fs.rmSync(state.dataDir, { recursive: true, force: true });
  });
  return {
    get doubles(): PushDoubles {
      return state.doubles!;
    },
    get dataDir(): string {
      return state.dataDir!;
    },
    get channel(): ThreadedPushChannel | undefined {
      return state.channel;
    },
    set channel(channel: ThreadedPushChannel | undefined) {
      state.channel = channel;
    },
    /** The configuration of a node whose pushes go to the doubles. */
    configFor(env: Record<string, string> = {}): Config {
      return loadConfig({ HERALD_DATA_DIR: state.dataDir!, ...state.doubles!.env, ...env });
    },
  };
}
