import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startApp, type RunningApp, type StartOptions } from '../../src/app.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createUser } from '../../src/chat/users.ts';
import { addFriendship } from '../../src/chat/friends.ts';
import { OzekiClient } from '../../client/ozeki.ts';
import type { StoreKind } from './stores.ts';
import { randomBytes } from 'node:crypto';

export const ADMIN_TOKEN = 'test-admin-token';

export interface TestServer {
  app: RunningApp;
  config: Config;
  dataDir: string;
  /** The self-signed certificate, to trust in TLS clients. */
  ca: string;
  http: string;
  https: string;
  stop(): Promise<void>;
}

/** Starts a whole node on loopback with ephemeral ports and a temporary data directory. */
export async function startTestServer(kind: StoreKind, env: Record<string, string> = {}, options: StartOptions = {}): Promise<TestServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-test-'));
  const config = loadConfig({
    HERALD_DATA_DIR: dataDir,
    HERALD_HOST: '127.0.0.1',
    HERALD_HTTP_PORT: '0',
    HERALD_HTTPS_PORT: '0',
    HERALD_UDP_PORT: '0',
    HERALD_ADMIN_TOKEN: ADMIN_TOKEN,
    HERALD_LOG_LEVEL: 'silent',
    ...env,
  });
  const store = options.store ?? (await kind.open());
  const app = await startApp(config, { ...options, store });
  return {
    app,
    config,
    dataDir,
    ca: fs.readFileSync(path.join(dataDir, 'tls-cert.pem'), 'utf8'),
    http: app.endpoints.http,
    https: app.endpoints.https,
    async stop() {
      await app.stop();
      if (!options.store) await store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function newStation(): string {
  return randomBytes(16).toString('hex');
}

export interface TestUser {
  userid: string;
  apikey: string;
  name: string;
  email: string;
  /** A logged-in client on a fresh station. */
  client: OzekiClient;
}

/** Creates a user in the server's store and logs a new station in. */
export async function addUser(server: TestServer, name: string, platform?: string): Promise<TestUser> {
  const email = `${name.toLowerCase()}.${randomBytes(3).toString('hex')}@example.org`;
  const { userid, apikey } = await createUser(server.app.parts.store.db, server.app.parts.store.secrets, { email, name });
  const client = new OzekiClient(server.http, newStation());
  await client.login(apikey, platform);
  return { userid, apikey, name, email, client };
}

export async function befriend(server: TestServer, a: TestUser, b: TestUser): Promise<void> {
  await addFriendship(server.app.parts.store.db, a.userid, b.userid);
}

/** Waits for a condition to hold, polling on the event loop, failing after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as Exclude<T, false | 0 | '' | null | undefined>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The node's Prometheus text, read with the admin token as an operator's scraper does. */
export async function metricsText(server: TestServer): Promise<string> {
  const response = await fetch(`${server.http}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text();
}
