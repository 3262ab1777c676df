import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.ts';
import { SQLITE } from './helpers/stores.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { openStore, type Store } from '../src/store/db.ts';

describe('herald token: scoped API tokens from the command line', { timeout: 60_000 }, () => {
  let dataDir: string;
  let env: Record<string, string>;
  let store: Store;
  let server: TestServer;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-cli-tokens-'));
    env = { HERALD_DATA_DIR: dataDir };
    // A running node on the database the command line writes to.
    store = await openStore({ sqliteFile: path.join(dataDir, 'herald.db') });
    server = await startTestServer(SQLITE, {}, { store });
  });
  afterAll(async () => {
    await server?.stop();
    await store?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const users = (token: string) => fetch(`${server.http}/v1/users`, { headers: { authorization: `Bearer ${token}` } });

  it('create prints the token once, list never shows it, revoke stops it on the running node at once', async () => {
    const created = await runCli(
      ['token', 'create', '--name', 'billing-backend', '--scope', 'users:read', '--scope', 'notifications:send', '--expires-in', '90d'],
      env,
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout) as { id: string; token: string; scopes: string[]; created: number; expires: number };
    expect(token).toMatchObject({ name: 'billing-backend', scopes: ['notifications:send', 'users:read'] });
    expect(token.token).toMatch(/^hrld_/);
    expect(token.expires - token.created).toBe(90 * 86_400_000);
    expect((await users(token.token)).status).toBe(200);

    const list = await runCli(['token', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toContain(token.token);
    const listed = list.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(listed).toEqual([expect.objectContaining({ id: token.id, name: 'billing-backend', lastused: expect.any(Number) })]);

    const revoked = await runCli(['token', 'revoke', token.id], env);
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: token.id, revoked: expect.any(Number) });
    const refused = await users(token.token);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: string }).error).toMatch(/revoked/);
    // Three runs of the command line and a node started as a process of its own.
  }, 90_000);

  // One case each: every one starts the command line anew.
  it.each<[string, string[], RegExp]>([
    ['an unknown scope', ['--name', 'x', '--scope', 'users:delete'], /unknown scope "users:delete"/],
    ['a missing name', ['--scope', 'users:read'], /--name/],
    ['no scope', ['--name', 'x'], /--scope/],
    ['a duration it cannot read', ['--name', 'x', '--scope', 'users:read', '--expires-in', 'soon'], /--expires-in/],
    [
      'an expiry that is not in the future',
      ['--name', 'x', '--scope', 'users:read', '--expires-in', '0d'],
      /--expires-in must be at least one second/,
    ],
  ])('token create with %s exits with code 2 and one line, storing nothing', async (_case, args, message) => {
    const result = await runCli(['token', 'create', ...args], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(await store.db.selectFrom('api_tokens').select('name').where('name', '=', 'x').execute()).toEqual([]);
  });

  it('token revoke of an unknown id exits with code 1 naming it', async () => {
    const unknown = await runCli(['token', 'revoke', 'nothing-here'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no such token: nothing-here/);
  });

  it.each(['create', 'list', 'revoke'])('token %s --help shows examples', async (command) => {
    const help = await runCli(['token', command, '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`Examples:\\n  \\$ herald token ${command}`));
  });
});
