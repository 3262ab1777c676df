import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.ts';

// Each run starts Node and compiles the CLI: seconds apiece on a busy machine.
describe('the herald command line', { timeout: 60_000 }, () => {
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-cli-'));
    env = { HERALD_DATA_DIR: dataDir };
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('user add prints the md5 user id of the e-mail address and a new apikey', async () => {
    const result = await runCli(['user', 'add', '--email', ' Admin@Ozeki.hu ', '--name', 'Administrator'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const created = JSON.parse(result.stdout.trim());
    // The one test vector of the Ozeki documentation that holds.
    expect(created.userid).toBe('d574638619cbff603bf857164c47e850');
    expect(created.apikey).toMatch(/^[0-9a-f]{48}$/);
  });

  it('user list shows the users, friend add makes them mutual friends', async () => {
    const bob = await runCli(['user', 'add', '--email', 'bob@example.org', '--name', 'Bob', '--nick', 'bobby'], env);
    expect(bob.code).toBe(0);
    const list = await runCli(['user', 'list'], env);
    const users = list.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(users.map((u) => u.email)).toEqual(['admin@ozeki.hu', 'bob@example.org']);
    expect(users[1]).toMatchObject({ name: 'Bob', nick: 'bobby' });

    const friends = await runCli(['friend', 'add', 'admin@ozeki.hu', JSON.parse(bob.stdout).userid], env);
    expect(friends.code).toBe(0);
    expect(JSON.parse(friends.stdout)).toEqual({ a: 'd574638619cbff603bf857164c47e850', b: JSON.parse(bob.stdout).userid });
  });

  it('refuses a duplicate e-mail, a bad e-mail and an unknown friend with a clear message', async () => {
    const duplicate = await runCli(['user', 'add', '--email', 'bob@example.org', '--name', 'Bob'], env);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/already exists/);
    const bad = await runCli(['user', 'add', '--email', 'not-an-address', '--name', 'X'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/email must be an e-mail address/);
    const unknown = await runCli(['friend', 'add', 'bob@example.org', 'nobody@example.org'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no such user: nobody@example.org/);
    const missing = await runCli(['user', 'add', '--name', 'X'], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/--email/);
  });
});
