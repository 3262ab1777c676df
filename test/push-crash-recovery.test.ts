import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OzekiClient } from '../client/ozeki.ts';
import { newStation, waitFor } from './helpers/server.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

const PUSHES = 500;
const ADMIN = 'crash-test-admin-token';
const root = path.resolve(import.meta.dirname, '..');

interface Child {
  process: ChildProcess;
  http: string;
  exited: Promise<number | null>;
}

/** Runs `herald serve` as a process of its own and resolves once it listens. */
async function startHerald(dataDir: string, env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, [path.join(root, 'bin/herald.js'), 'serve'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HERALD_DATA_DIR: dataDir,
      HERALD_HOST: '127.0.0.1',
      HERALD_HTTP_PORT: '0',
      HERALD_HTTPS_PORT: '0',
      HERALD_UDP_PORT: '0',
      HERALD_ADMIN_TOKEN: ADMIN,
      HERALD_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const http = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; endpoints?: { http: string } };
        if (entry.msg === 'Herald is listening' && entry.endpoints) resolve(entry.endpoints.http);
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`herald exited with ${code} before listening: ${stderr}`)));
  });
  return { process: child, http, exited };
}

async function admin(base: string, route: string, body: unknown) {
  const response = await fetch(`${base}/v1${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status >= 300) throw new Error(`${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, string>;
}

describe('pushes pending when the server is killed', () => {
  let doubles: PushDoubles;
  let dataDir: string;
  const children: Child[] = [];

  beforeAll(async () => {
    doubles = await startPushDoubles();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-crash-'));
  });
  afterAll(async () => {
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null) {
        child.process.kill('SIGTERM');
        await child.exited;
      }
    }
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
