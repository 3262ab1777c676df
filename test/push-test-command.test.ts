import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/db.ts';
import { createUser } from '../src/chat/users.ts';
import { bindStation, registerDevice } from '../src/chat/devices.ts';
import { newStation } from './helpers/server.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

async function herald(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin/herald.js'), ...args], {
      cwd: root,
      env: { PATH: process.env.PATH, HERALD_LOG_LEVEL: 'silent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('herald push test <station>', () => {
  let doubles: PushDoubles;
  let dataDir: string;
  const goodStation = newStation();
  const goneStation = newStation();
  const goodToken = apnsToken();
  const goneToken = apnsToken();

  beforeAll(async () => {
    doubles = await startPushDoubles();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-pushtest-'));
    const store = await openStore({ sqliteFile: path.join(dataDir, 'herald.db') });
    const { userid } = await createUser(store.db, store.secrets, { email: 'bob@example.org', name: 'Bob' });
    for (const [station, token] of [
      [goodStation, goodToken],
      [goneStation, goneToken],
    ]) {
      await bindStation(store.db, store.secrets, station, userid, 'ios');
      await registerDevice(store.db, station, userid, { platform: 'ios', pushToken: token });
    }
    await store.close();
    doubles.apns.unregister(goneToken, 1_700_000_000_000);
  });
  afterAll(async () => {
    await doubles?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("sends a test push and prints the provider's answer", async () => {
    const result = await herald(['push', 'test', goodStation], { HERALD_DATA_DIR: dataDir, ...doubles.env });
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as { provider: string; outcome: { kind: string; detail: string } };
    expect(printed.provider).toBe('apns');
    expect(printed.outcome.kind).toBe('delivered');
    const [push] = doubles.apns.pushesTo(goodToken);
    expect(printed.outcome.detail).toBe(`200 apns-id ${push.apnsId}`);
    expect(push.payload.aps.alert.title).toBe('Herald test push');
  });

  it("prints APNs' 410 Unregistered answer for a dead token", async () => {
    const result = await herald(['push', 'test', goneStation], { HERALD_DATA_DIR: dataDir, ...doubles.env });
    expect(result.code).toBe(2);
    const printed = JSON.parse(result.stdout) as { outcome: { kind: string; reason: string } };
    expect(printed.outcome).toMatchObject({ kind: 'dead' });
    expect(printed.outcome.reason).toContain('410 Unregistered');
  });

  it('says clearly that APNs is not configured', async () => {
    const result = await herald(['push', 'test', goodStation], { HERALD_DATA_DIR: dataDir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('APNs is not configured');
    expect(result.stderr).toContain('HERALD_APNS_KEY_FILE');
  });
});
