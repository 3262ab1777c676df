import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OzekiClient } from '../client/ozeki.ts';
import { newStation, waitFor } from './helpers/server.ts';
import { adminPost as admin, startHerald, stopHerald, type HeraldProcess } from './helpers/herald-process.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

const PUSHES = 500;

// Two node starts in child processes: tens of seconds on a machine busy with a second suite.
describe('pushes pending when the server is killed', { timeout: 120_000 }, () => {
  let doubles: PushDoubles;
  let dataDir: string;
  const children: HeraldProcess[] = [];

  beforeAll(async () => {
    doubles = await startPushDoubles();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-crash-'));
  });
  afterAll(async () => {
    for (const child of children) await stopHerald(child);
    await doubles?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it(`after a SIGKILL with ${PUSHES} pushes pending and a restart, all ${PUSHES} arrive, each exactly once`, async () => {
    // The double takes requests but answers none: nothing is acknowledged before the kill.
    doubles.apns.hold();
    const first = await startHerald(dataDir, doubles.env);
    children.push(first);

    const alice = await admin(first.http, '/users', { email: 'alice@example.org', name: 'Alice' });
    const bob = await admin(first.http, '/users', { email: 'bob@example.org', name: 'Bob' });
    await admin(first.http, '/friends', { a: alice.userid, b: bob.userid });
    const alicesClient = new OzekiClient(first.http, newStation());
    await alicesClient.login(alice.apikey);
    const iphone = apnsToken();
    const bobsPhone = new OzekiClient(first.http, newStation());
    await bobsPhone.login(bob.apikey, 'ios');
    await bobsPhone.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: iphone });
    const created = await alicesClient.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    for (let i = 0; i < PUSHES; i += 25) {
      await Promise.all(
        Array.from({ length: Math.min(25, PUSHES - i) }, (_, k) => alicesClient.addMessage(conversationId, `m-${i + k}`, 'AAAA')),
      );
    }

    await waitFor(() => doubles.apns.held() > 0, 10_000, 'the first push to reach the double');
    expect(doubles.apns.accepted).toBe(0);
    first.process.kill('SIGKILL');
    await first.exited;
    await waitFor(() => doubles.apns.held() === 0, 5000, 'the killed connection to drop its streams');
    doubles.apns.release();
    expect(doubles.apns.accepted).toBe(0);

    const second = await startHerald(dataDir, doubles.env);
    children.push(second);
    await waitFor(() => doubles.apns.accepted >= PUSHES, 30_000, `${PUSHES} pushes to be accepted`);

    // Once the outbox says every row is delivered, nothing more can be sent.
    const db = new SQLite(path.join(dataDir, 'herald.db'), { readonly: true });
    try {
      await waitFor(
        () => {
          const row = db.prepare(`SELECT count(*) AS n FROM deliveries WHERE state = 'delivered'`).get() as { n: number };
          return row.n === PUSHES;
        },
        10_000,
        'the outbox to record every push as delivered',
      );
      const notificationIds = (db.prepare(`SELECT notification_id FROM deliveries`).all() as Array<{ notification_id: string }>).map(
        (r) => r.notification_id,
      );
      expect(notificationIds).toHaveLength(PUSHES);

      const received = doubles.apns.pushesTo(iphone).map((p) => p.apnsId);
      expect(received).toHaveLength(PUSHES);
      expect(new Set(received).size).toBe(PUSHES);
      expect(new Set(received)).toEqual(new Set(notificationIds));
      const titles = new Set(doubles.apns.pushesTo(iphone).map((p) => p.payload.aps.alert.title));
      expect(titles.has(`${PUSHES} messages from Alice`)).toBe(true);
    } finally {
      db.close();
    }
    expect(doubles.apns.accepted).toBe(PUSHES);
  });
});
