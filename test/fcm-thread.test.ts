import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { startFcmThreads } from '../src/channels/fcm/thread.ts';
import type { PushTarget, SendOutcome } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import { waitFor } from './helpers/server.ts';
import { runningThreads, sendEach, usePushThreads } from './helpers/push-thread.ts';
import { fcmToken } from './mocks/push-env.ts';

/*
 * FCM messages sent from a worker thread (HERALD_FCM_THREADS): the thread answers as the
 * channel does on the main thread (refusals, a refused access token fetched again), and
 * every push handed over is answered once, also when the thread stops with pushes unanswered.
 */

vi.mock('node:worker_threads', async (importOriginal) =>
  (await import('./helpers/push-thread.ts')).watchedWorkerThreads(await importOriginal<typeof import('node:worker_threads')>()),
);

const threads = usePushThreads('herald-fcm-thread-');

let seq = 0;
function notification(badge: number): Notification {
  seq++;
  return {
    id: crypto.randomUUID(),
    userId: `user-${seq}`,
    seq,
    type: 'message',
    conversationId: 'conversation-1',
    senderId: 'alice',
    title: `${badge} messages from Alice`,
    body: '',
    badge,
    silent: false,
    data: {},
    createdAt: Date.now(),
  };
}

/** `count` pushes, each to a new Android device, of one notification per ten devices. */
function pushes(count: number): Array<[PushTarget, Notification]> {
  let n = notification(1);
  return Array.from({ length: count }, (_, i) => {
    if (i > 0 && i % 10 === 0) n = notification(1 + i / 10);
    return [{ station: 's', userId: n.userId, platform: 'android', provider: 'fcm', token: fcmToken() }, n];
  });
}

describe('FCM from a worker thread', () => {
  it('delivers every message once with its own notification, and passes on refusals', async () => {
    threads.channel = await startFcmThreads(threads.configFor(), 1);
    expect(threads.channel.provider).toBe('fcm');
    expect([...runningThreads]).toHaveLength(1);
    const sent = pushes(200);
    const [gone] = pushes(1);
    threads.doubles.fcm.unregister(gone[0].token);

    const outcomes = await sendEach(threads.channel, [...sent, gone]);
    expect(outcomes.slice(0, 200).every((o) => o.kind === 'delivered')).toBe(true);
    expect(outcomes[200]).toMatchObject({ kind: 'dead' });
    expect((outcomes[200] as { reason: string }).reason).toContain('UNREGISTERED');
    for (const [target, n] of sent) {
      const [received] = threads.doubles.fcm.messagesTo(target.token);
      expect(received.message.data.id).toBe(n.id);
      expect(received.message.android.notification.notification_count).toBe(n.badge);
    }
  });

  it('fetches a new access token in the thread when FCM refuses the one it has', async () => {
    threads.channel = await startFcmThreads(threads.configFor(), 1);
    expect((await sendEach(threads.channel, pushes(1))).map((o) => o.kind)).toEqual(['delivered']);
    const issued = threads.doubles.fcm.tokensIssued;
    threads.doubles.fcm.revokeAccessTokens();
    const [push] = pushes(1);
    expect(await sendEach(threads.channel, [push])).toEqual([{ kind: 'delivered' }]);
    expect(threads.doubles.fcm.tokensIssued).toBe(issued + 1);
    expect(threads.doubles.fcm.messagesTo(push[0].token)).toHaveLength(1);
  });

  it('a thread that stops answers what it held with a retry; sent again, every message arrives once', async () => {
    threads.channel = await startFcmThreads(threads.configFor(), 1);
    // The access token first, so that the held messages are all on the connection.
    expect((await sendEach(threads.channel, pushes(1))).map((o) => o.kind)).toEqual(['delivered']);
    threads.doubles.fcm.hold();
    const held = pushes(30);
    const answered = sendEach(threads.channel, held);
    await waitFor(() => threads.doubles.fcm.held() === 30, 5000, 'the double to hold 30 messages');
    const [worker] = runningThreads;
    await worker.terminate();

    const outcomes = await answered;
    for (const outcome of outcomes) {
      expect(outcome.kind).toBe('retry');
      expect((outcome as { reason: string }).reason).toBe('fcm push thread stopped');
    }
    expect([...runningThreads]).toHaveLength(0);

    // The double sees the connection gone: the held messages were never taken.
    await waitFor(() => threads.doubles.fcm.held() === 0, 5000, 'the double to see the held messages dropped');
    threads.doubles.fcm.release();
    // What the outbox does with a retry: the same messages again, through a new thread.
    const again: SendOutcome[] = await sendEach(threads.channel, held);
    expect(again.every((o) => o.kind === 'delivered')).toBe(true);
    expect([...runningThreads]).toHaveLength(1);
    expect([...runningThreads][0]).not.toBe(worker);
    for (const [target] of held) expect(threads.doubles.fcm.messagesTo(target.token)).toHaveLength(1);
  });

  it('closing answers the messages still unanswered with a retry, and later ones at once', async () => {
    threads.channel = await startFcmThreads(threads.configFor(), 1);
    expect((await sendEach(threads.channel, pushes(1))).map((o) => o.kind)).toEqual(['delivered']);
    threads.doubles.fcm.hold();
    const answered = sendEach(threads.channel, pushes(10));
    await waitFor(() => threads.doubles.fcm.held() === 10, 5000, 'the double to hold 10 messages');
    await threads.channel.close();
    expect((await answered).map((o) => o.kind)).toEqual(new Array(10).fill('retry'));
    expect([...runningThreads]).toHaveLength(0);
    expect(await sendEach(threads.channel, pushes(1))).toEqual([{ kind: 'retry', reason: 'fcm channel is closed' }]);
  });

  it('a service account that cannot be used stops the start with the reason', async () => {
    const account = path.join(threads.dataDir, 'bad-account.json');
    fs.writeFileSync(account, JSON.stringify({ ...threads.doubles.fcm.serviceAccount, private_key: 'not a key' }));
    await expect(startFcmThreads(threads.configFor({ HERALD_FCM_SERVICE_ACCOUNT: account }), 1)).rejects.toThrow(/is not a PKCS#8 RSA key/);
    expect([...runningThreads]).toHaveLength(0);
  });

  it('HERALD_FCM_THREADS takes 0 to 16 threads', () => {
    expect(threads.configFor({ HERALD_FCM_THREADS: '0' }).fcm!.threads).toBe(0);
    expect(threads.configFor({ HERALD_FCM_THREADS: '3' }).fcm!.threads).toBe(3);
    expect(threads.configFor().fcm!.threads).toBe(os.availableParallelism() > 1 ? 1 : 0);
    for (const bad of ['-1', '17', '1.5', 'two']) {
      expect(() => threads.configFor({ HERALD_FCM_THREADS: bad })).toThrow(/HERALD_FCM_THREADS must be a whole number from 0 to 16/);
    }
  });
});
