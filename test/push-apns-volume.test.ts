import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { newStation, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { createUser } from '../src/chat/users.ts';
import type { NotificationDraft } from '../src/model/notification.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

const USERS = 50;
const DEVICES_PER_USER = 2;
const NOTIFICATIONS_PER_USER = 50;
const TOTAL = USERS * DEVICES_PER_USER * NOTIFICATIONS_PER_USER;

// Sent from the main thread and from a worker thread (HERALD_APNS_THREADS).
for (const threads of ['0', '1']) {
  describeEachStore(`a burst of pushes to APNs on $name, ${threads} APNs threads`, (kind) => {
    let doubles: PushDoubles;
    let server: TestServer;
    const userIds: string[] = [];

    beforeAll(async () => {
      // A peer limit well below the dispatcher's own bound, so the test shows it is respected.
      doubles = await startPushDoubles({ maxConcurrentStreams: 100 });
      server = await startTestServer(kind, { ...doubles.env, HERALD_APNS_THREADS: threads });
      const db = server.app.parts.store.db;
      const now = Date.now();
      const devices = [];
      for (let u = 0; u < USERS; u++) {
        const { userid } = await createUser(db, server.app.parts.store.secrets, { email: `burst${u}@example.org`, name: `Burst ${u}` });
        userIds.push(userid);
        for (let d = 0; d < DEVICES_PER_USER; d++) {
          devices.push({
            station: newStation(),
            user_id: userid,
            platform: 'ios',
            udp_secret_sealed: null,
            push_provider: 'apns',
            push_token: apnsToken(),
            push_keys: null,
            push_disabled_at: null,
            push_disabled_reason: null,
            acked_seq: 0,
            seen_seq: 0,
            delivered_seq: 0,
            last_seen_at: now,
            created_at: now,
          });
        }
      }
      await db.insertInto('devices').values(devices).execute();
    });
    afterAll(async () => {
      await server?.stop();
      await doubles?.close();
    });

    it(`${TOTAL} pushes committed at once all reach the APNs double, each once`, async () => {
      const drafts: NotificationDraft[] = [];
      for (const userId of userIds) {
        for (let i = 1; i <= NOTIFICATIONS_PER_USER; i++) {
          drafts.push({
            userId,
            type: 'message',
            conversationId: `c-${userId.slice(0, 8)}`,
            senderId: null,
            title: `${i} messages from Alice`,
          });
        }
      }
      await server.app.parts.notifier.transact((_trx, emit) => emit(drafts));

      await waitFor(() => doubles.apns.accepted >= TOTAL, 60_000, `${TOTAL} pushes to be accepted`);
      const db = server.app.parts.store.db;
      await waitFor(
        async () => {
          const row = await db
            .selectFrom('deliveries')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('state', '=', 'delivered')
            .executeTakeFirstOrThrow();
          return Number(row.n) === TOTAL;
        },
        20_000,
        'every delivery to be recorded as delivered',
      );

      expect(doubles.apns.accepted).toBe(TOTAL);
      const pairs = new Set(doubles.apns.pushes.map((p) => `${p.token}/${p.apnsId}`));
      expect(pairs.size).toBe(TOTAL);
      // Many streams were in flight at once, never more than the peer allowed.
      expect(doubles.apns.peakStreams).toBeGreaterThan(10);
      expect(doubles.apns.peakStreams).toBeLessThanOrEqual(100);
      // One connection and one provider token, verified once.
      expect(doubles.apns.connections).toBe(1);
      expect(doubles.apns.tokenVerifications).toBe(1);
    });
  });
}
