import { afterAll, beforeAll, expect, it } from 'vitest';
import { createECDH, randomBytes } from 'node:crypto';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';

const ENDPOINT = 'https://push.example.net/wpush/v2/';

function goodSubscription() {
  return new TestBrowser().subscription(ENDPOINT + randomBytes(16).toString('hex'));
}

function withKeys(keys: Record<string, unknown>) {
  const good = goodSubscription();
  return { ...good, keys: { ...good.keys, ...keys } };
}

const compressedPoint = () => {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh.getPublicKey(null, 'compressed').toString('base64url');
};

/** Each refused subscription, and the words the refusal must contain. */
const BAD_SUBSCRIPTIONS: Array<[string, unknown, string]> = [
  ['a number instead of a subscription', 5, 'PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}'],
  ['no endpoint', { keys: goodSubscription().keys }, 'endpoint is missing'],
  ['an endpoint that is not a URL', { ...goodSubscription(), endpoint: 'not a url' }, 'endpoint is not a URL'],
  ['a plain http endpoint', { ...goodSubscription(), endpoint: 'http://push.example.net/x' }, 'endpoint must be an https:// URL'],
  ['an endpoint over 2048 characters', { ...goodSubscription(), endpoint: ENDPOINT + 'a'.repeat(2048) }, 'longer than 2048 characters'],
  ['no keys', { endpoint: ENDPOINT + 'k' }, 'keys is missing'],
  ['a compressed p256dh', withKeys({ p256dh: compressedPoint() }), 'p256dh must be a 65-byte uncompressed P-256 public key'],
  [
    'a p256dh that is not on the curve',
    withKeys({ p256dh: Buffer.concat([Buffer.from([4]), randomBytes(64)]).toString('base64url') }),
    'p256dh must be a 65-byte uncompressed P-256 public key',
  ],
  ['a p256dh that is not base64url', withKeys({ p256dh: 'not base64!' }), 'p256dh must be a 65-byte uncompressed P-256 public key'],
  ['a 12-byte auth secret', withKeys({ auth: randomBytes(12).toString('base64url') }), 'auth must be a 16-byte secret'],
  ['an auth secret that is not a string', withKeys({ auth: 16 }), 'auth must be a base64url string'],
];

describeEachStore('registering a browser push subscription', (kind) => {
  let server: TestServer;
  let bob: TestUser;
  let carol: TestUser;
  const bobsSubscription = goodSubscription();

  async function pushColumns(station: string) {
    return server.app.parts.store.db
      .selectFrom('devices')
      .select(['platform', 'push_provider', 'push_token', 'push_keys', 'push_disabled_at'])
      .where('station', '=', station)
      .executeTakeFirst();
  }

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob', 'browser');
    carol = await addUser(server, 'Carol', 'browser');
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("Bob's browser registers its subscription through chatdevice and /v1; Herald keeps the endpoint and keys", async () => {
    const answer = await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: bobsSubscription });
    expect(answer.device).toMatchObject({ platform: 'browser', push: { provider: 'webpush', enabled: true } });
    expect(await pushColumns(bob.client.station)).toEqual({
      platform: 'browser',
      push_provider: 'webpush',
      push_token: bobsSubscription.endpoint,
      push_keys: JSON.stringify({ p256dh: bobsSubscription.keys.p256dh, auth: bobsSubscription.keys.auth }),
      push_disabled_at: null,
    });

    // The admin (a backend using Herald as its gateway) registers a browser that never logged in.
    const station = newStation();
    const other = goodSubscription();
    const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices/${station}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ platform: 'browser', pushsubscription: other }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { device: unknown }).device).toMatchObject({ push: { provider: 'webpush', enabled: true } });
    expect(await pushColumns(station)).toMatchObject({ push_provider: 'webpush', push_token: other.endpoint });
  });

  it('bad subscriptions are refused with a clear error in each API, and nothing changes', async () => {
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: bobsSubscription });
    const before = await pushColumns(bob.client.station);
    expect(before?.push_token).toBe(bobsSubscription.endpoint);
    for (const [what, subscription, message] of BAD_SUBSCRIPTIONS) {
      const ozeki = await bob.client.call('chatdevice', { action: 'register', platform: 'browser', pushsubscription: subscription });
      expect(ozeki.httpStatus, what).toBe(400);
      expect(ozeki.body.status, what).toBe('ERROR');
      expect(ozeki.body.errormessage, what).toContain(message);

      const station = newStation();
      const rest = await fetch(`${server.http}/v1/users/${bob.userid}/devices/${station}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ platform: 'browser', pushsubscription: subscription }),
      });
      expect(rest.status, what).toBe(400);
      expect(((await rest.json()) as { error: string }).error, what).toContain(message);
      // The refused PUT did not create the device either.
      expect(await pushColumns(station), what).toBeUndefined();
    }
    const onAndroid = await bob.client.call('chatdevice', {
      action: 'register',
      platform: 'android',
      pushsubscription: goodSubscription(),
    });
    expect(onAndroid.body.errormessage).toContain('platform android takes no pushsubscription');
    const both = await bob.client.call('chatdevice', {
      action: 'register',
      platform: 'browser',
      pushtoken: 'abc',
      pushsubscription: goodSubscription(),
    });
    expect(both.body.errormessage).toContain('either pushtoken or pushsubscription');
    const brokenJson = await bob.client.call('chatdevice', { action: 'register', platform: 'browser', pushsubscription: '{"endpoint":' });
    expect(brokenJson.body.errormessage).toContain('must be the JSON of PushSubscription.toJSON()');
    expect(await pushColumns(bob.client.station)).toEqual(before);
  });

  it('a subscription registered on another device is detached from the first, and null removes it', async () => {
    const shared = goodSubscription();
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: shared });
    // The browser profile now belongs to Carol (her station subscribes with the same endpoint).
    await carol.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: JSON.stringify(shared) });
    expect(await pushColumns(bob.client.station)).toMatchObject({ push_provider: null, push_token: null, push_keys: null });
    expect(await pushColumns(carol.client.station)).toMatchObject({ push_provider: 'webpush', push_token: shared.endpoint });

    const removed = await carol.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: null });
    expect(removed.device).toMatchObject({ push: null });
    expect(await pushColumns(carol.client.station)).toMatchObject({ push_provider: null, push_token: null, push_keys: null });
  });
});
