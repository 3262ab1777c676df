import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { apnsToken, fcmToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';

describeEachStore('registering push tokens', (kind) => {
  let doubles: PushDoubles;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;

  beforeAll(async () => {
    doubles = await startPushDoubles();
    server = await startTestServer(kind, doubles.env);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'ios');
    carol = await addUser(server, 'Carol', 'ios');
    await befriend(server, alice, bob);
    await befriend(server, alice, carol);
  });
  afterAll(async () => {
    await server?.stop();
    await doubles?.close();
  });

  const put = (userId: string, station: string, body: unknown, auth: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` }) =>
    fetch(`${server.http}/v1/users/${userId}/devices/${station}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify(body),
    });

  it('chatdevice register takes an APNs token for ios and an FCM token for android, and refuses bad ones clearly', async () => {
    const ios = await bob.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: apnsToken() });
    expect(ios.device).toMatchObject({ platform: 'ios', push: { provider: 'apns', enabled: true } });
    const android = await bob.client.ok('chatdevice', { action: 'register', platform: 'android', pushtoken: fcmToken() });
    expect(android.device).toMatchObject({ platform: 'android', push: { provider: 'fcm', enabled: true } });
    const windows = await bob.client.call('chatdevice', { action: 'register', platform: 'windows', pushtoken: 'abc' });
    expect(windows.httpStatus).toBe(400);
    expect(windows.body.errormessage).toMatch(/takes no push token/);
    const notHex = await bob.client.call('chatdevice', { action: 'register', platform: 'ios', pushtoken: 'not-a-token' });
    expect(notHex.httpStatus).toBe(400);
    expect(notHex.body.errormessage).toMatch(/hexadecimal/);
  });

  it('a backend registers a device and its token through /v1, and the device gets pushes', async () => {
    const station = newStation();
    const token = fcmToken();
    const registered = await put(bob.userid, station, { platform: 'android', pushtoken: token });
    expect(registered.status).toBe(200);
    expect(((await registered.json()) as { device: unknown }).device).toMatchObject({ station, push: { provider: 'fcm', enabled: true } });

    expect((await put(bob.userid, station, { platform: 'fridge', pushtoken: token })).status).toBe(400);
    expect((await put(bob.userid, station, { platform: 'android', pushtoken: 42 })).status).toBe(400);
    expect((await put(bob.userid, 'not-a-station', { platform: 'android', pushtoken: token })).status).toBe(400);
    // A user may not register devices for someone else.
    const foreign = await put(
      carol.userid,
      newStation(),
      { platform: 'android', pushtoken: fcmToken() },
      { 'ozeki-station': bob.client.station },
    );
    expect(foreign.status).toBe(403);

    const created = await alice.client.createConversation([bob.userid]);
    await alice.client.addMessage((created.conversation as { id: string }).id, 'via-v1', 'AAAA');
    await waitFor(() => doubles.fcm.messagesTo(token).length === 1, 5000, 'the push');
    const [message] = doubles.fcm.messagesTo(token);
    expect(message.message.notification.title).toBe('1 message from Alice');
  });

  it('a token moved to another user is detached from the first, who no longer gets its pushes', async () => {
    const token = apnsToken();
    const bobsStation = newStation();
    expect((await put(bob.userid, bobsStation, { platform: 'ios', pushtoken: token })).status).toBe(200);
    await carol.client.ok('chatdevice', { action: 'register', platform: 'ios', pushtoken: token });
    const db = server.app.parts.store.db;
    const bobsDevice = await db.selectFrom('devices').selectAll().where('station', '=', bobsStation).executeTakeFirstOrThrow();
    expect(bobsDevice.push_token).toBeNull();

    const toBob = await alice.client.createConversation([bob.userid]);
    const toCarol = await alice.client.createConversation([carol.userid]);
    await alice.client.addMessage((toBob.conversation as { id: string }).id, 'for-bob', 'AAAA');
    await alice.client.addMessage((toCarol.conversation as { id: string }).id, 'for-carol', 'AAAA');
    await waitFor(() => doubles.apns.pushesTo(token).length === 1, 5000, "Carol's push");
    const rows = await db.selectFrom('deliveries').select('station').where('station', '=', bobsStation).execute();
    expect(rows).toEqual([]);
    expect(doubles.apns.pushesTo(token)[0].payload.conversationid).toBe((toCarol.conversation as { id: string }).id);
  });
});
