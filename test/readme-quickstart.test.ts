import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HERALD_BIN, ROOT, startServeProcess } from './helpers/cli.ts';
import { tracked } from './helpers/children.ts';

/*
 * The README's Quickstart, run as written: its shell block is taken from README.md and run by
 * bash against `herald serve`, in a directory whose data/ is that node's data directory. Only
 * the HTTPS port differs (the node listens on a free one rather than on 9443), and `npx herald`
 * runs this checkout's bin/herald.js.
 */

/** The shell block of the README's Quickstart section. */
function quickstartScript(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Quickstart\n');
  expect(start, 'the README has a Quickstart section').toBeGreaterThan(0);
  const section = readme.slice(start + 1, readme.indexOf('\n## ', start + 1));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  expect(block, 'the Quickstart has a sh block').not.toBeNull();
  return block![1];
}

const hasCurl = spawnSync('curl', ['--version']).status === 0;

/** Runs a bash script in `cwd`; resolves with its output when it exits, kills it after `timeoutMs`. */
function runBash(script: string, cwd: string, timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    // A process group of its own: the background watcher is killed with the shell on a timeout.
    const child = tracked(
      spawn('bash', ['-c', script], {
        cwd,
        detached: true,
        // `require('ws')` of the README's watcher resolves from a clone's node_modules.
        env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_PATH: path.join(ROOT, 'node_modules') },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      { group: true },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`the Quickstart did not finish in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!hasCurl)('the README Quickstart, command by command', { timeout: 120_000 }, () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let httpsPort: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-quickstart-'));
    const started = await startServeProcess(
      {
        HERALD_DATA_DIR: path.join(dir, 'data'),
        HERALD_HOST: '127.0.0.1',
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        // As after a fresh clone: no admin token given.
        HERALD_ADMIN_TOKEN: '',
      },
      90_000,
    );
    server = started.child;
    httpsPort = new URL(started.endpoints.https).port;
  }, 120_000);

  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('makes two users, logs them in, and Bob sees the message arrive on his WebSocket and the clean after viewed', async () => {
    const script = quickstartScript();
    // The block speaks to the default node; nothing in it names another port.
    expect(script).toContain('127.0.0.1:9443');
    expect(script).not.toMatch(/:(9080|9010)\b/);
    // `wait`: the watcher of step 3 stops by itself after the clean frame.
    // `npx herald` is this checkout's CLI, run on the same data directory as the node.
    expect(script).toContain('npx herald user add');
    const local = script.replaceAll('127.0.0.1:9443', `127.0.0.1:${httpsPort}`).replaceAll('npx herald ', `node ${HERALD_BIN} `);
    const result = await runBash(`set -e\n${local}\nwait\n`, dir, 90_000);
    expect(result.stderr, result.stdout).toBe('');
    expect(result.code, result.stdout).toBe(0);

    // The watcher in the background writes to the same stdout as curl, whose body and the
    // newline of -w '\n' are two writes: a frame may land between them, so it starts its own line.
    const lines = result.stdout.replaceAll('Bob got ', '\nBob got ').trim().split('\n');
    const answers = lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
    // Two logins, the add and the viewed report print their answers.
    expect(answers.map((answer) => answer.status)).toEqual(['OK', 'OK', 'OK', 'OK']);
    expect(answers[0]).toMatchObject({ fullname: 'Alice', registration: 'true' });
    expect(answers[1]).toMatchObject({ fullname: 'Bob' });
    expect(answers[2].message.ID).toBe('m1');
    // Created as the README spells it: yyyy-MM-dd HH:mm:ss, UTC (within the test's minute).
    expect(answers[2].message.Created).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(Math.abs(Date.parse(answers[2].message.Created.replace(' ', 'T') + 'Z') - Date.now())).toBeLessThan(60_000);
    expect(answers[3].reportid).toMatch(/^[0-9a-f]{32}$/);

    const frames = lines.filter((line) => line.startsWith('Bob got ')).map((line) => JSON.parse(line.slice('Bob got '.length)));
    const message = frames.find((frame) => frame.type === 'notification' && frame.kind === 'message');
    expect(message).toMatchObject({ title: '1 message from Alice', badge: 1, silent: false, data: { messageid: 'm1', unread: 1 } });
    const clean = frames.find((frame) => frame.type === 'clean');
    expect(clean).toMatchObject({ badge: 0, conversationid: message.conversationid });
    expect(clean.seq).toBeGreaterThan(message.seq);
  });
});
