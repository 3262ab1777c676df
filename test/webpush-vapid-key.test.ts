import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createECDH } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { newStation } from './helpers/server.ts';
import { createUser } from '../src/chat/users.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { loadConfig } from '../src/config.ts';
import { startApp } from '../src/app.ts';

describeEachStore("Herald's VAPID key", (kind) => {
  let dataDir: string;

  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-vapid-'));
  });
  afterAll(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  function configFor(env: Record<string, string> = {}) {
    return loadConfig({
      HERALD_DATA_DIR: dataDir,
      HERALD_HTTP_PORT: '0',
      HERALD_HTTPS_PORT: '0',
      HERALD_UDP_PORT: '0',
      HERALD_LOG_LEVEL: 'silent',
      HERALD_ADMIN_TOKEN: 'vapid-test-admin',
      ...env,
    });
  }

  it('is made once into the data directory, served to browsers without login and in chatlogin, and read back from its file', async () => {
    const file = path.join(dataDir, 'vapid.json');
    const copy = path.join(dataDir, 'vapid-copy.json');
    const served: string[] = [];
    // The second start reads the key file the first one wrote (as HERALD_VAPID_KEY_FILE).
    for (const env of [{}, { HERALD_VAPID_KEY_FILE: copy }] as Array<Record<string, string>>) {
      if (env.HERALD_VAPID_KEY_FILE) fs.copyFileSync(file, copy);
      const store = await kind.open();
      const app = await startApp(configFor(env), { store });
      try {
        const response = await fetch(`${app.endpoints.http}/v1/webpush/vapid-public-key`);
        expect(response.status).toBe(200);
        const { publickey } = (await response.json()) as { publickey: string };
        served.push(publickey);
        const { apikey } = await createUser(store.db, store.secrets, { email: `a${served.length}@example.org`, name: 'Alice' });
        const login = await new OzekiClient(app.endpoints.http, newStation()).login(apikey, 'browser');
        expect(login.vapidpublickey).toBe(publickey);
      } finally {
        await app.stop();
        await store.close();
      }
    }
    expect(served[1]).toBe(served[0]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { publicKey: string; privateKey: string };
    expect(stored.publicKey).toBe(served[0]);
    // The public key is the uncompressed point of the stored private key.
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(stored.privateKey, 'base64url'));
    expect(ecdh.getPublicKey().toString('base64url')).toBe(served[0]);
  });

  it('a configured key file that is missing or does not hold a key pair stops the server with its name', async () => {
    const missing = path.join(dataDir, 'no-such-vapid.json');
    const broken = path.join(dataDir, 'broken-vapid.json');
    fs.writeFileSync(broken, JSON.stringify({ publicKey: 'AAAA', privateKey: 'BBBB' }));
    for (const [file, reason] of [
      [missing, 'cannot be read'],
      [broken, 'must hold {"publicKey"'],
    ]) {
      const config = configFor({ HERALD_VAPID_KEY_FILE: file });
      const store = await kind.open();
      try {
        await expect(startApp(config, { store })).rejects.toThrow(`HERALD_VAPID_KEY_FILE ${file} ${reason}`);
      } finally {
        await store.close();
      }
    }
    expect(() => loadConfig({ HERALD_VAPID_SUBJECT: 'admin@example.org' })).toThrow(
      'HERALD_VAPID_SUBJECT must be a mailto: address or an https:// URL',
    );
  });
});
