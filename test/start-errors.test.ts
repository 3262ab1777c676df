import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HERALD_BIN, ROOT, runCli, startServeProcess, type CliResult } from './helpers/cli.ts';
import { waitFor } from './helpers/server.ts';
import { tracked } from './helpers/children.ts';

/*
 * `herald serve` that cannot start says why in one line naming the variable, exits 1 and
 * shows no stack trace (HERALD_LOG_LEVEL=debug does). Every case starts the real CLI.
 */

const ADMIN_TOKEN = 'start-errors-admin-token';

// Each start compiles the CLI with tsx: seconds apiece on a busy machine.
describe('herald serve that cannot start', { timeout: 120_000 }, () => {
  let dir: string;
  const holders: Array<net.Server | dgram.Socket> = [];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-start-errors-'));
    // Readable by another user: the unwritable-directory case runs the CLI as nobody when root.
    fs.chmodSync(dir, 0o755);
  });
  afterEach(async () => {
    for (const holder of holders.splice(0)) await new Promise<void>((resolve) => holder.close(() => resolve()));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** `herald serve` with free ports and its own data directory, plus `env`; resolves when it exits. */
  const serve = (env: Record<string, string>) =>
    runCli(
      ['serve'],
      {
        HERALD_DATA_DIR: path.join(dir, 'data'),
        HERALD_HOST: '127.0.0.1',
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        HERALD_ADMIN_TOKEN: ADMIN_TOKEN,
        HERALD_DATABASE_URL: '',
        HERALD_REDIS_URL: '',
        ...env,
      },
      100_000,
    );

  /** Exit code 1 and exactly these lines on standard error. */
  const saysOnly = (result: CliResult, ...lines: string[]) => {
    expect(result.stderr).toBe(lines.map((line) => `herald: ${line}\n`).join(''));
    expect(result.code).toBe(1);
  };

  const takenTcpPort = async () => {
    const server = net.createServer();
    holders.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  };

  it('names HERALD_HTTP_PORT when its port is in use', async () => {
    const port = await takenTcpPort();
    saysOnly(await serve({ HERALD_HTTP_PORT: String(port) }), `port ${port} (HERALD_HTTP_PORT) is already in use on 127.0.0.1`);
  });

  it('names HERALD_HTTPS_PORT when its port is in use', async () => {
    const port = await takenTcpPort();
    saysOnly(await serve({ HERALD_HTTPS_PORT: String(port) }), `port ${port} (HERALD_HTTPS_PORT) is already in use on 127.0.0.1`);
  });

  it('names HERALD_UDP_PORT when its port is in use', async () => {
    const socket = dgram.createSocket('udp4');
    holders.push(socket);
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const port = socket.address().port;
    saysOnly(await serve({ HERALD_UDP_PORT: String(port) }), `port ${port} (HERALD_UDP_PORT) is already in use on 127.0.0.1`);
  });

  it('shows the whole error only at debug level', async () => {
    const port = await takenTcpPort();
    const result = await serve({ HERALD_HTTP_PORT: String(port), HERALD_LOG_LEVEL: 'debug' });
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n')[0]).toBe(`herald: port ${port} (HERALD_HTTP_PORT) is already in use on 127.0.0.1`);
    expect(result.stderr).toContain('EADDRINUSE');
    expect(result.stderr).toMatch(/\n\s+at /);
  });

  it('names HERALD_HOST when it does not resolve, or is not an address of this machine', async () => {
    saysOnly(await serve({ HERALD_HOST: 'nosuch.invalid' }), 'HERALD_HOST nosuch.invalid does not resolve to an address');
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of a real machine.
    saysOnly(await serve({ HERALD_HOST: '192.0.2.1' }), 'HERALD_HOST 192.0.2.1 is not an address of this machine');
  });

  it('names HERALD_DATA_DIR when it is not a directory', async () => {
    const file = path.join(dir, 'not-a-directory');
    fs.writeFileSync(file, '');
    saysOnly(await serve({ HERALD_DATA_DIR: file }), `HERALD_DATA_DIR ${file} is not a directory`);
    saysOnly(await serve({ HERALD_DATA_DIR: path.join(file, 'data') }), `HERALD_DATA_DIR ${path.join(file, 'data')} is not a directory`);
  });

  it('names HERALD_DATA_DIR when it is not writable, and the port variable when a port needs privileges', async () => {
    const readOnly = path.join(dir, 'read-only');
    fs.mkdirSync(readOnly, { mode: 0o555 });
    fs.chmodSync(readOnly, 0o555);
    // root may write anywhere: run as nobody then (its own tsx cache goes to the temp directory).
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const run = (env: Record<string, string>) =>
      new Promise<CliResult>((resolve, reject) => {
        const child = tracked(
          spawn(process.execPath, [HERALD_BIN, 'serve'], {
            cwd: ROOT,
            env: { PATH: process.env.PATH, HERALD_HTTPS_PORT: '0', HERALD_UDP_PORT: '0', HERALD_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
            ...asUser,
          }),
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk) => (stdout += chunk));
        child.stderr.on('data', (chunk) => (stderr += chunk));
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`herald serve did not exit: ${stderr}`));
        }, 100_000);
        // nobody may be unable to reach node itself (a directory of root's): say so at once.
        child.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    saysOnly(await run({ HERALD_DATA_DIR: readOnly, HERALD_HTTP_PORT: '0' }), `HERALD_DATA_DIR ${readOnly} is not writable by this user`);
    saysOnly(
      await run({ HERALD_DATA_DIR: path.join(readOnly, 'data'), HERALD_HTTP_PORT: '0' }),
      `HERALD_DATA_DIR ${path.join(readOnly, 'data')} cannot be made: not writable by this user`,
    );
    const writable = path.join(dir, 'for-nobody');
    fs.mkdirSync(writable, { mode: 0o777 });
    fs.chmodSync(writable, 0o777);
    saysOnly(
      await run({ HERALD_DATA_DIR: writable, HERALD_HTTP_PORT: '80' }),
      'port 80 (HERALD_HTTP_PORT) may not be used by this user on 127.0.0.1 (ports below 1024 need privileges)',
    );
  });

  it('names HERALD_DATABASE_URL or HERALD_REDIS_URL when the database or Redis cannot be reached', async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    saysOnly(
      await serve({ HERALD_DATABASE_URL: 'postgres://herald:secret@127.0.0.1:1/herald' }),
      'HERALD_DATABASE_URL: cannot use the database at 127.0.0.1:1/herald: connect ECONNREFUSED 127.0.0.1:1',
    );
    saysOnly(
      await serve({ HERALD_REDIS_URL: 'redis://127.0.0.1:1' }),
      'HERALD_REDIS_URL: cannot reach Redis: connect ECONNREFUSED 127.0.0.1:1',
    );
  });

  it('lists every configuration problem, one line each, before opening anything', async () => {
    const dataDir = path.join(dir, 'untouched');
    const result = await serve({
      HERALD_DATA_DIR: dataDir,
      HERALD_LOG_LEVEL: 'loud',
      HERALD_WEBPUSH_ALLOW_PRIVATE: 'yes',
      HERALD_APNS_SANDBOX: 'true',
    });
    saysOnly(
      result,
      'HERALD_APNS_SANDBOX must be 0 or 1, got "true"',
      'HERALD_WEBPUSH_ALLOW_PRIVATE must be 0 or 1, got "yes"',
      'HERALD_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    );
    expect(fs.existsSync(dataDir)).toBe(false);
  });
});

describe('herald serve that starts', { timeout: 120_000 }, () => {
  let dir: string;
  let child: ChildProcess | undefined;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-banner-'));
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints a banner with the URLs, the admin token file and the certificate fingerprint, and warns of unknown names', async () => {
    const dataDir = path.join(dir, 'data');
    const started = await startServeProcess(
      {
        HERALD_DATA_DIR: dataDir,
        HERALD_HOST: '127.0.0.1',
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        HERALD_ADMIN_TOKEN: '',
        HERALD_BANNER: '1',
        HERALD_HTTPS_PROT: '9443',
      },
      100_000,
    );
    child = started.child;
    const { endpoints } = started;
    // The JSON line tools parse is still there, unchanged.
    expect(endpoints.https).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const output = await waitFor(() => started.output().includes('trust it with') && started.output(), 30_000, 'the banner');
    const certFile = path.join(dataDir, 'tls-cert.pem');
    const fingerprint = new X509Certificate(fs.readFileSync(certFile)).fingerprint256;
    for (const line of [
      'herald: warning: HERALD_HTTPS_PROT is not a Herald variable and is ignored (did you mean HERALD_HTTPS_PORT?)',
      'Herald is listening:',
      `  HTTP   ${endpoints.http}   WebSocket ${endpoints.ws}`,
      `  HTTPS  ${endpoints.https}   WebSocket ${endpoints.wss}`,
      `  UDP    ${endpoints.udp}`,
      `  Admin token: shown once at first start (its hash: ${path.join(dataDir, 'admin-token.sha256')}; herald admin-token reset makes a new one)`,
      `    SHA-256 fingerprint ${fingerprint}`,
      `    trust it with: curl --cacert ${certFile} ${endpoints.https}/healthz`,
    ]) {
      expect(output.split('\n')).toContain(line);
    }
    // What the banner says works: the certificate file trusts the HTTPS port.
    const { default: https } = await import('node:https');
    const status = await new Promise<number | undefined>((resolve, reject) => {
      https
        .get(`${endpoints.https}/healthz`, { ca: fs.readFileSync(certFile) }, (response) => {
          response.resume();
          resolve(response.statusCode);
        })
        .on('error', reject);
    });
    expect(status).toBe(200);
  });
});
