import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, metricsText, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { requestFrom } from './helpers/from-address.ts';
import { ozekiTime } from '../client/ozeki.ts';

describeEachStore('wrong credentials are slowed to a crawl', (kind) => {
  let server: TestServer;
  let alice: TestUser;

  beforeAll(async () => {
    // The default burst (200) and failure cost (20), refilled over 10 minutes instead of one,
    // so that however slowly a loaded machine runs the test no try gets through by the clock.
    server = await startTestServer(kind, { HERALD_LIMIT_LOGIN: '200/10m' });
    alice = await addUser(server, 'Alice');
  });
  afterAll(async () => server?.stop());

  const login = (from: string, apikey: string, station = newStation()) =>
    requestFrom(from, `${server.http}/?srv=chatserver&api=chatlogin`, {
      headers: { 'ozeki-station': station },
      body: { clientversioncode: 3, timestamp: ozekiTime(), action: 'login', apikey },
    });

  it('20 wrong apikey logins from one address: the first ten are refused with 401, the rest with 429 and Retry-After', async () => {
    const before = await snapshot(server.app.parts.store);
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await login('127.0.0.2', `wrong-key-${i}`));

    expect(answers.slice(0, 10).map((a) => a.status)).toEqual(Array(10).fill(401));
    for (const answer of answers.slice(10)) {
      expect(answer.status).toBe(429);
      expect(answer.json).toEqual({ status: 'ERROR', errormessage: expect.stringMatching(/^rate limited: too many logins/) });
      // 10 tokens in debt and 1 needed, at one every 3 s.
      expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(30);
    }
    // Slowed means the right key waits too, from that address; nothing was bound meanwhile.
    expect((await login('127.0.0.2', alice.apikey)).status).toBe(429);
    expect(await snapshot(server.app.parts.store)).toEqual(before);
    expect(await metricsText(server)).toContain('herald_rate_limited_total{limit="login"} 11');

    // Another address is not slowed by the first one's guessing.
    const elsewhere = await login('127.0.0.3', alice.apikey);
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.json.userid).toBe(alice.userid);
  });

  it('wrong bearer tokens on /v1 are slowed the same way, and the admin token waits while they are', async () => {
    const before = await snapshot(server.app.parts.store);
    const users = (token: string) =>
      requestFrom('127.0.0.4', `${server.http}/v1/users`, { method: 'GET', headers: { authorization: `Bearer ${token}` } });
    const statuses = [];
    for (let i = 0; i < 13; i++) statuses.push((await users(`hrld_guess${i}`)).status);
    // A bearer check costs nothing while the address owes nothing: the eleventh guess is still
    // checked (and puts the address 20 in debt).
    expect(statuses.slice(0, 11)).toEqual(Array(11).fill(401));
    expect(statuses.slice(11)).toEqual([429, 429]);

    const limited = await users(ADMIN_TOKEN);
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({ error: expect.stringMatching(/^rate limited: too many logins or refused credentials/) });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(await snapshot(server.app.parts.store)).toEqual(before);

    expect(
      (await requestFrom('127.0.0.5', `${server.http}/v1/users`, { method: 'GET', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))
        .status,
    ).toBe(200);
  });
});
