import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OzekiClient } from '../client/ozeki.ts';
import { WsReceiver, type NotificationFrame } from '../client/ws-receiver.ts';
import { newStation, waitFor } from './helpers/server.ts';
import { adminPost, startHerald, stopHerald, type HeraldProcess } from './helpers/herald-process.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

const HOLD_S = 3;
/** Two starts of a node from its TypeScript sources: seconds each on a busy machine. */
const CHILD_TIMEOUT_MS = 120_000;

describe('a push held when the server is killed', () => {
  let doubles: PushDoubles;
  let dataDir: string;
  const children: HeraldProcess[] = [];
  let desktop: WsReceiver | undefined;
  let db: SQLite.Database | undefined;

  beforeAll(async () => {
    doubles = await startPushDoubles();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-hold-crash-'));
  });
  afterAll(async () => {
    desktop?.close();
    db?.close();
    for (const child of children) await stopHerald(child);
    await doubles?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, CHILD_TIMEOUT_MS);

  it(
    'SIGKILL during the grace period: after the restart the alert goes out once the hold ends, exactly once',
    async () => {
      const env = { ...doubles.env, HERALD_PUSH_HOLD_S: String(HOLD_S) };
      const first = await startHerald(dataDir, env);
      children.push(first);
      db = new SQLite(path.join(dataDir, 'herald.db'), { readonly: true });
      const deliveries = () =>
        db!.prepare(`SELECT state, next_attempt_at FROM deliveries`).all() as Array<{ state: string; next_attempt_at: number }>;

      const alice = await adminPost(first.http, '/users', { email: 'alice@example.org', name: 'Alice' });
      const bob = await adminPost(first.http, '/users', { email: 'bob@example.org', name: 'Bob' });
      await adminPost(first.http, '/friends', { a: alice.userid, b: bob.userid });
      const alicesClient = new OzekiClient(first.http, newStation());
      await alicesClient.login(alice.apikey);
      const iphone = apnsToken();
      const bobsPhone = new OzekiClient(first.http, newStation());
      await bobsPhone.login(bob.apikey, 'ios');
      await bobsPhone.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: iphone });

      // Bob is at his desktop, which does not acknowledge: only the hold's end decides.
      const bobsDesktop = new OzekiClient(first.http, newStation());
      await bobsDesktop.login(bob.apikey, 'windows');
      desktop = new WsReceiver({ url: first.ws, station: bobsDesktop.station, autoAck: false, minBackoffMs: 50, maxBackoffMs: 200 });
      const synced = desktop.next('synced', undefined, 5000);
      desktop.start();
      await synced;
      desktop.setActive(true);
      const activeAt = db.prepare(`SELECT active_at FROM devices WHERE station = ?`).pluck();
      await waitFor(() => activeAt.get(bobsDesktop.station) !== null, 3000, 'the desktop to be in use');

      const created = await alicesClient.createConversation([bob.userid]);
      const conversationId = (created.conversation as { id: string }).id;
      const frame = desktop.next('notification', (n) => n.conversationid === conversationId && n.kind === 'message', 5000);
      await alicesClient.addMessage(conversationId, 'm-1', 'AAAA');
      const { id } = (await frame) as NotificationFrame;
      const [held] = deliveries();
      expect(held.state).toBe('held');

      first.process.kill('SIGKILL');
      await first.exited;
      desktop.close();
      expect(doubles.apns.accepted).toBe(0);

      const second = await startHerald(dataDir, env);
      children.push(second);
      await waitFor(() => doubles.apns.pushesTo(iphone).length > 0, (HOLD_S + 5) * 1000, 'the held alert after the restart');
      await waitFor(() => deliveries()[0].state === 'delivered', 5000, 'the outbox to record it delivered');
      const pushes = doubles.apns.pushesTo(iphone);
      expect(pushes).toHaveLength(1);
      expect(pushes[0].apnsId).toBe(id);
      expect(pushes[0].payload.aps.alert.title).toBe('1 message from Alice');
      expect(pushes[0].at).toBeGreaterThanOrEqual(held.next_attempt_at);
      expect(deliveries()).toHaveLength(1);
    },
    CHILD_TIMEOUT_MS,
  );
});
