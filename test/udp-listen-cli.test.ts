import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { HERALD_BIN } from './helpers/cli.ts';
import { tracked } from './helpers/children.ts';

describeEachStore('herald listen --udp', (kind) => {
  let server: TestServer;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob', 'windows');
  });
  afterAll(async () => server?.stop());

  it('logs in with the apikey and prints each incoming notification as a JSON line', async () => {
    const station = newStation();
    const child = tracked(
      spawn(process.execPath, [HERALD_BIN, 'listen', '--udp', '--station', station, '--apikey', bob.apikey, '--server', server.http], {
        env: { ...process.env, HERALD_LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => stderr.includes('registered at udp://'), 15_000, 'herald listen to register');
      // It echoed the server's cookie before the server bound its address.
      expect(stderr.indexOf('proving this address to udp://')).toBeGreaterThanOrEqual(0);
      expect(stderr.indexOf('proving this address to udp://')).toBeLessThan(stderr.indexOf('registered at udp://'));
      const [sent] = await server.app.parts.notifier.transact((_trx, emit) =>
        emit([{ userId: bob.userid, type: 'test', title: 'Hello from the test' }]),
      );
      const line = await waitFor(() => stdout.split('\n').find((l) => l.includes(sent.id)), 5000, 'the printed notification');
      expect(JSON.parse(line)).toMatchObject({ type: 'notification', seq: sent.seq, id: sent.id, title: 'Hello from the test' });
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
