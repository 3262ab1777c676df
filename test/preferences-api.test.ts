import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { ozekiTime } from '../client/ozeki.ts';

const HOUR = 3600_000;
const at = (ms: number) => ozekiTime(new Date(ms));

describeEachStore('preferences over the Ozeki API and /v1', (kind) => {
  let server: TestServer;
  let bob: TestUser;
  let carol: TestUser;
  let reader: string;
  let writer: string;

  const v1 = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
    fetch(`${server.http}/v1${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const prefsOf = (user: TestUser, headers: Record<string, string> = admin) => v1('GET', `/users/${user.userid}/preferences`, headers);
  const put = (user: TestUser, body: unknown, headers: Record<string, string> = admin) =>
    v1('PUT', `/users/${user.userid}/preferences`, headers, body);
  const token = async (scopes: string[]) => {
    const response = await v1('POST', '/tokens', admin, { name: scopes.join(' '), scopes });
    return `Bearer ${((await response.json()) as { token: string }).token}`;
  };
  /** Everything a refused change must leave as it was. */
  const state = async () => ({
    rows: await snapshot(server.app.parts.store),
    preferences: await server.app.parts.store.db.selectFrom('user_preferences').selectAll().orderBy('user_id').execute(),
    mutes: await server.app.parts.store.db.selectFrom('conversation_mutes').selectAll().orderBy('conversation_id').execute(),
    kinds: await server.app.parts.store.db.selectFrom('devices').select(['station', 'alert_kinds']).orderBy('station').execute(),
  });

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob');
    carol = await addUser(server, 'Carol');
    reader = await token(['users:read']);
    writer = await token(['users:write']);
  });
  afterAll(async () => server?.stop());

  it('Bob starts with nothing set: every kind alerts on every device, nothing is silent', async () => {
    const answer = await bob.client.ok('chatpreferences', { action: 'get' });
    expect(answer.preferences).toEqual({ dnduntil: null, quiethours: null, conversationmutes: {}, alertkinds: null, silentnow: false });
    const response = await prefsOf(bob);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      dnduntil: null,
      quiethours: null,
      conversationmutes: {},
      devicealertkinds: { [bob.client.station]: null },
      silentnow: false,
    });
  });

  it('Bob sets one thing at a time over the Ozeki API, and what he left out stays', async () => {
    const dnd = Math.floor((Date.now() + 2 * HOUR) / 1000) * 1000;
    let answer = await bob.client.ok('chatpreferences', { action: 'set', dnduntil: at(dnd) });
    expect(answer.preferences).toMatchObject({ dnduntil: at(dnd), silentnow: true });

    answer = await bob.client.ok('chatpreferences', {
      action: 'set',
      quiethours: { start: '22:30', end: '06:45', timezone: 'europe/budapest', days: ['sun', 'fri', 'fri'] },
    });
    expect(answer.preferences).toMatchObject({
      dnduntil: at(dnd),
      // The zone as IANA spells it; the days in week order, each once.
      quiethours: { start: '22:30', end: '06:45', timezone: 'Europe/Budapest', days: ['sun', 'fri'] },
    });

    // An alias stays as Bob wrote it, whichever of its names this Node's ICU calls canonical.
    for (const alias of ['Asia/Kolkata', 'Asia/Calcutta']) {
      answer = await bob.client.ok('chatpreferences', { action: 'set', quiethours: { start: '22:30', end: '06:45', timezone: alias } });
      expect((answer.preferences as { quiethours: { timezone: string } }).quiethours.timezone).toBe(alias);
    }
    await bob.client.ok('chatpreferences', {
      action: 'set',
      quiethours: { start: '22:30', end: '06:45', timezone: 'europe/budapest', days: ['sun', 'fri', 'fri'] },
    });

    answer = await bob.client.ok('chatpreferences', {
      action: 'set',
      conversationmutes: { c0ffee: at(dnd), invoices: at(dnd + HOUR) },
      alertkinds: ['message', 'app.invoice'],
    });
    expect(answer.preferences).toMatchObject({
      conversationmutes: { c0ffee: at(dnd), invoices: at(dnd + HOUR) },
      alertkinds: ['message', 'app.invoice'],
    });

    // The same, as /v1 tells it: unix milliseconds, and every device of Bob's.
    const response = await prefsOf(bob);
    expect(await response.json()).toEqual({
      dnduntil: dnd,
      quiethours: { start: '22:30', end: '06:45', timezone: 'Europe/Budapest', days: ['sun', 'fri'] },
      conversationmutes: { c0ffee: dnd, invoices: dnd + HOUR },
      devicealertkinds: { [bob.client.station]: ['message', 'app.invoice'] },
      silentnow: true,
    });

    // null ends each of them; one mute ends, the other stays.
    answer = await bob.client.ok('chatpreferences', {
      action: 'set',
      dnduntil: null,
      quiethours: null,
      conversationmutes: { c0ffee: null },
      alertkinds: null,
    });
    expect(answer.preferences).toEqual({
      dnduntil: null,
      quiethours: null,
      conversationmutes: { invoices: at(dnd + HOUR) },
      alertkinds: null,
      silentnow: false,
    });
  });

  it('the login answer names the preferences URL', async () => {
    const login = await bob.client.login(bob.apikey);
    expect((login.urls as Record<string, string>).preferences).toBe(`${server.https}/?srv=chatserver&api=chatpreferences`);
  });

  it('every bad Ozeki set is refused with 400 naming the field, and changes nothing', async () => {
    const soon = at(Date.now() + HOUR);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, 'set needs at least one of dnduntil, quiethours, conversationmutes, alertkinds'],
      [{ dnduntil: '2020-01-01 00:00:00' }, 'dnduntil must be a time in the future'],
      [{ dnduntil: 'tomorrow' }, 'dnduntil must be a UTC time written yyyy-MM-dd HH:mm:ss'],
      [{ dnduntil: 1893456000000 }, 'dnduntil must be a UTC time written yyyy-MM-dd HH:mm:ss'],
      [{ dnduntil: at(Date.now() + 400 * 24 * HOUR) }, 'dnduntil may be at most 366 days ahead'],
      [{ quiethours: 'nights' }, 'quiethours must be an object {start, end, timezone, days} or null'],
      [{ quiethours: { start: '24:00', end: '07:00', timezone: 'UTC' } }, 'quiethours.start must be a time of day written HH:MM'],
      [{ quiethours: { start: '22:00', end: '7:00', timezone: 'UTC' } }, 'quiethours.end must be a time of day written HH:MM'],
      [{ quiethours: { start: '22:00', end: '22:00', timezone: 'UTC' } }, 'quiethours.start and quiethours.end must differ'],
      [{ quiethours: { start: '22:00', end: '07:00', timezone: 'Mars/Olympus_Mons' } }, '"Mars/Olympus_Mons" is not an IANA time zone'],
      [{ quiethours: { start: '22:00', end: '07:00' } }, 'quiethours.timezone must be an IANA time zone'],
      [{ quiethours: { start: '22:00', end: '07:00', timezone: 'UTC', days: [] } }, 'quiethours.days must be a non-empty list of sun'],
      [{ quiethours: { start: '22:00', end: '07:00', timezone: 'UTC', days: ['friday'] } }, 'quiethours.days must be'],
      [{ conversationmutes: ['c0ffee'] }, 'conversationmutes must be an object {conversationid: time or null}'],
      [{ conversationmutes: { c0ffee: 'soon' } }, 'conversationmutes.c0ffee must be a UTC time'],
      [{ conversationmutes: { ['x'.repeat(201)]: soon } }, 'conversationmutes names a conversation id of 1 to 200 characters'],
      [{ alertkinds: 'message' }, 'alertkinds must be a list of kinds, or null for every kind'],
      [{ alertkinds: ['message', 'system.clean'] }, 'alertkinds[1] must be one of message'],
      [{ alertkinds: Array.from({ length: 51 }, (_, i) => `app.kind${i}`) }, 'alertkinds holds more than 50 kinds'],
      // One good field and one bad: neither is stored.
      [{ dnduntil: soon, quiethours: { start: '22:00', end: '07:00', timezone: 'Nowhere/Land' } }, 'is not an IANA time zone'],
    ];
    const before = await state();
    for (const [fields, message] of cases) {
      const { httpStatus, body } = await bob.client.call('chatpreferences', { action: 'set', ...fields });
      expect({ fields, httpStatus, status: body.status }).toEqual({ fields, httpStatus: 400, status: 'ERROR' });
      expect(body.errormessage).toContain(message);
    }
    const unknownAction = await bob.client.call('chatpreferences', { action: 'reset' });
    expect(unknownAction.httpStatus).toBe(400);
    expect(unknownAction.body.errormessage).toBe('unknown action "reset" for chatpreferences');
    expect(await state()).toEqual(before);
  });

  it('/v1: the admin and a users:write token change, a users:read token only reads, Bob only his own', async () => {
    const dnd = Date.now() + HOUR;
    const byAdmin = await put(bob, { dnduntil: dnd });
    expect(byAdmin.status).toBe(200);
    expect(((await byAdmin.json()) as { dnduntil: number }).dnduntil).toBe(dnd);

    expect((await prefsOf(bob, { authorization: reader })).status).toBe(200);
    const readerPut = await put(bob, { dnduntil: null }, { authorization: reader });
    expect(readerPut.status).toBe(403);
    expect(((await readerPut.json()) as { error: string }).error).toContain('users:write');
    expect((await prefsOf(bob, { authorization: writer })).status).toBe(403);

    const byWriter = await put(
      bob,
      { quiethours: { start: '23:00', end: '06:00', timezone: 'Asia/Tokyo', days: ['sat', 'sun'] } },
      { authorization: writer },
    );
    expect(byWriter.status).toBe(200);
    expect(await byWriter.json()).toMatchObject({
      dnduntil: dnd,
      quiethours: { start: '23:00', end: '06:00', timezone: 'Asia/Tokyo', days: ['sun', 'sat'] },
    });

    // Bob through his own station; by e-mail address too.
    const self = { 'ozeki-station': bob.client.station };
    const mine = await v1('PUT', `/users/${encodeURIComponent(bob.email)}/preferences`, self, {
      dnduntil: null,
      devicealertkinds: { [bob.client.station.toUpperCase()]: ['system.friend_request'] },
    });
    expect(mine.status).toBe(200);
    expect(await mine.json()).toMatchObject({ dnduntil: null, devicealertkinds: { [bob.client.station]: ['system.friend_request'] } });

    // Carol may not read or change Bob's; nobody without a credential may.
    const carolsStation = { 'ozeki-station': carol.client.station };
    expect((await prefsOf(bob, carolsStation)).status).toBe(403);
    expect((await put(bob, { dnduntil: null }, carolsStation)).status).toBe(403);
    expect((await prefsOf(bob, {})).status).toBe(401);
    const nobody = await v1('GET', '/users/nobody@example.org/preferences', admin);
    expect(nobody.status).toBe(404);
  });

  it('every bad /v1 change is refused with 400 {"error"} and changes nothing', async () => {
    const soon = Date.now() + HOUR;
    const strangerStation = newStation();
    const cases: Array<[unknown, string]> = [
      [{ dnduntil: 'tomorrow' }, 'dnduntil must be'],
      [{ dnduntil: Date.now() - HOUR }, 'dnduntil must be a time in the future'],
      [{ dnd: soon }, 'dnd is not a field of this call'],
      [{ quiethours: { start: '22:00', end: '07:00', timezone: 'Atlantis/Capital' } }, '"Atlantis/Capital" is not an IANA time zone'],
      [{ quiethours: { start: '22:00', end: '07:00', timezone: 'UTC', days: ['someday'] } }, 'quiethours.days must be'],
      [{ quiethours: { start: '22:00', end: '07:00', timezone: 'UTC', quiet: true } }, 'quiethours.quiet is not a field of this call'],
      [{ conversationmutes: { c0ffee: 'soon' } }, 'conversationmutes'],
      [{ conversationmutes: { c0ffee: Date.now() - 1 } }, 'conversationmutes.c0ffee must be a time in the future'],
      [{ devicealertkinds: { [carol.client.station]: ['message'] } }, `${carol.client.station} is not a device of this user`],
      [{ devicealertkinds: { [strangerStation]: ['message'] } }, `${strangerStation} is not a device of this user`],
      [{ devicealertkinds: { 'not-a-station': ['message'] } }, '"not-a-station" is not a station (32 hexadecimal characters)'],
      [{ devicealertkinds: { [bob.client.station]: ['Message'] } }, `devicealertkinds.${bob.client.station}[0] must be one of message`],
      [
        { conversationmutes: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`c${i}`, soon])) },
        'at most 1000 conversations may be muted until a time at once',
      ],
      [{ dnduntil: soon, devicealertkinds: { [strangerStation]: null } }, 'is not a device of this user'],
    ];
    const before = await state();
    for (const [body, message] of cases) {
      const response = await put(bob, body);
      expect({ body, status: response.status }).toEqual({ body, status: 400 });
      const answer = (await response.json()) as { error: string };
      expect(Object.keys(answer)).toEqual(['error']);
      expect(answer.error).toContain(message);
    }
    const notJson = await fetch(`${server.http}/v1/users/${bob.userid}/preferences`, {
      method: 'PUT',
      headers: { ...admin, 'content-type': 'application/json' },
      body: '{"dnduntil":',
    });
    expect(notJson.status).toBe(400);
    expect(await state()).toEqual(before);
  });

  it('/v1/openapi.json documents both calls', async () => {
    const document = (await (await fetch(`${server.http}/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>>;
    };
    const path = document.paths['/v1/users/{id}/preferences'];
    expect(Object.keys(path).sort()).toEqual(['get', 'put']);
    expect(path.put.requestBody).toBeDefined();
    expect(path.get.responses['200']).toBeDefined();
  });
});
