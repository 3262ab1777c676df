import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { startApnsThreads } from '../src/channels/apns/thread.ts';
import { sendOne, type PushTarget, type SendOutcome } from '../src/model/channel.ts';
import { notificationId, type Notification } from '../src/model/notification.ts';
import { waitFor } from './helpers/server.ts';
import { runningThreads as running, sendEach, usePushThreads } from './helpers/push-thread.ts';
import { apnsToken } from './mocks/push-env.ts';

/*
 * APNs pushes sent from worker threads (HERALD_APNS_THREADS): every push handed over is
 * answered once, also when a thread stops or the channel closes with pushes unanswered.
 */

vi.mock('node:worker_threads', async (importOriginal) =>
  (await import('./helpers/push-thread.ts')).watchedWorkerThreads(await importOriginal<typeof import('node:worker_threads')>()),
);

const threads = usePushThreads('herald-apns-thread-');

let seq = 0;
function notification(userKey: number, badge: number): Notification {
  seq++;
  return {
    id: notificationId(userKey, seq),
    userId: `user-${userKey}`,
    seq,
    type: 'message',
    conversationId: 'c1',
    senderId: 'alice',
    title: `${badge} messages from Alice`,
    body: '',
    badge,
    silent: false,
    data: { conversationid: 'c1' },
    createdAt: Date.now(),
  };
}

function target(token: string, n: Notification): PushTarget {
  return { station: 's', userId: n.userId, platform: 'ios', provider: 'apns', token };
}

/** Sends each [token, notification] through the channel and resolves to the outcomes in order. */
function sendAll(pushes: Array<[string, Notification]>): Promise<SendOutcome[]> {
  return sendEach(
    threads.channel!,
    pushes.map(([token, n]) => [target(token, n), n]),
  );
}

describe('APNs from worker threads', () => {
  it('delivers every push once, each device with its notification, and passes on refusals', async () => {
    threads.channel = await startApnsThreads(threads.configFor(), 1);
    const before = threads.doubles.apns.accepted;
    const pushes: Array<[string, Notification]> = [];
    // 30 users with 10 devices each: a notification crosses to the thread once, its pushes go out ten times.
    for (let user = 1; user <= 30; user++) {
      const n = notification(user, user);
      for (let device = 0; device < 10; device++) pushes.push([apnsToken(), n]);
    }
    const gone = apnsToken();
    threads.doubles.apns.unregister(gone, 1_700_000_000_000);
    pushes.push([gone, notification(99, 1)]);

    const outcomes = await sendAll(pushes);
    expect(outcomes.slice(0, 300).every((o) => o.kind === 'delivered')).toBe(true);
    expect(outcomes[300]).toMatchObject({ kind: 'dead' });
    expect((outcomes[300] as { reason: string }).reason).toContain('Unregistered');
    expect(threads.doubles.apns.accepted - before).toBe(300);
    for (const [token, n] of pushes.slice(0, 300)) {
      const [received] = threads.doubles.apns.pushesTo(token);
      expect(received.apnsId).toBe(n.id);
      expect(received.payload.aps.badge).toBe(n.badge);
      expect(received.payload.aps.alert.title ?? received.payload.aps.alert).toBeTruthy();
    }
    // The promise form answers too.
    const token = apnsToken();
    const one = notification(7, 3);
    await expect(sendOne(threads.channel, target(token, one), one)).resolves.toEqual({
      kind: 'delivered',
    });
    expect(threads.doubles.apns.pushesTo(token)).toHaveLength(1);
  });

  it('answers what a stopped thread held with a retry, and the next push starts a new thread', async () => {
    threads.channel = await startApnsThreads(threads.configFor(), 1);
    // A first answer proves the provider token; until then the channel sends one push at a time.
    expect(await sendAll([[apnsToken(), notification(199, 1)]])).toEqual([{ kind: 'delivered' }]);
    threads.doubles.apns.hold();
    const held = sendAll(Array.from({ length: 20 }, (_, i) => [apnsToken(), notification(200 + i, 1)] as [string, Notification]));
    await waitFor(() => threads.doubles.apns.held() === 20, 5000, 'the double to hold 20 pushes');
    const [worker] = running;
    await worker.terminate();

    const outcomes = await held;
    expect(outcomes).toHaveLength(20);
    for (const outcome of outcomes) {
      expect(outcome.kind).toBe('retry');
      expect((outcome as { reason: string }).reason).toContain('push thread stopped');
    }
    expect([...running]).toHaveLength(0);

    threads.doubles.apns.release();
    const token = apnsToken();
    const [after] = await sendAll([[token, notification(300, 2)]]);
    expect(after).toEqual({ kind: 'delivered' });
    expect([...running]).toHaveLength(1);
    expect([...running][0]).not.toBe(worker);
    expect(threads.doubles.apns.pushesTo(token)).toHaveLength(1);
  });

  it('closing answers the pushes still unanswered with a retry, and later pushes at once', async () => {
    threads.channel = await startApnsThreads(threads.configFor(), 1);
    // A first answer proves the provider token; until then the channel sends one push at a time.
    expect(await sendAll([[apnsToken(), notification(199, 1)]])).toEqual([{ kind: 'delivered' }]);
    threads.doubles.apns.hold();
    const held = sendAll(Array.from({ length: 10 }, (_, i) => [apnsToken(), notification(400 + i, 1)] as [string, Notification]));
    await waitFor(() => threads.doubles.apns.held() === 10, 5000, 'the double to hold 10 pushes');
    const [worker] = running;
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));

    await threads.channel.close();
    const outcomes = await held;
    expect(outcomes.map((o) => o.kind)).toEqual(new Array(10).fill('retry'));
    await exited;
    expect([...running]).toHaveLength(0);

    const [late] = await sendAll([[apnsToken(), notification(500, 1)]]);
    expect(late).toMatchObject({ kind: 'retry' });
  });

  it('spreads batches over several threads, each with a connection of its own', async () => {
    const connections = threads.doubles.apns.connections;
    const verifications = threads.doubles.apns.tokenVerifications;
    threads.channel = await startApnsThreads(threads.configFor(), 2);
    expect([...running]).toHaveLength(2);
    // Batches are what one turn of the event loop hands over: four turns, four batches.
    const outcomes: SendOutcome[] = [];
    for (let turn = 0; turn < 4; turn++) {
      outcomes.push(
        ...(await sendAll(
          Array.from({ length: 25 }, (_, i) => [apnsToken(), notification(600 + turn * 25 + i, 1)] as [string, Notification]),
        )),
      );
    }
    expect(outcomes.filter((o) => o.kind === 'delivered')).toHaveLength(100);
    expect(threads.doubles.apns.connections - connections).toBe(2);
    // Each connection proves its provider token once.
    expect(threads.doubles.apns.tokenVerifications - verifications).toBe(2);
  });

  it('a key that cannot be used stops the start with the reason', async () => {
    const badKey = path.join(threads.dataDir, 'AuthKey_bad.p8');
    fs.writeFileSync(badKey, 'not a key');
    await expect(startApnsThreads(threads.configFor({ HERALD_APNS_KEY_FILE: badKey }), 1)).rejects.toThrow(
      /HERALD_APNS_KEY_FILE .* is not a PKCS#8 P-256 key/,
    );
  });

  it('HERALD_APNS_THREADS takes 0 to 16 threads', () => {
    expect(threads.configFor({ HERALD_APNS_THREADS: '0' }).apns!.threads).toBe(0);
    expect(threads.configFor({ HERALD_APNS_THREADS: '3' }).apns!.threads).toBe(3);
    expect(threads.configFor().apns!.threads).toBe(os.availableParallelism() > 1 ? 1 : 0);
    for (const bad of ['-1', '17', '1.5', 'two']) {
      expect(() => threads.configFor({ HERALD_APNS_THREADS: bad })).toThrow(/HERALD_APNS_THREADS must be a whole number from 0 to 16/);
    }
  });
});
