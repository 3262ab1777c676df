import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice } from './helpers/websocket.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { MAX_DEVICES_PER_USER } from '../src/chat/devices.ts';
import { WsReceiver } from '../client/ws-receiver.ts';

describeEachStore('devices of a WebSocket user', (kind) => {
  let server: TestServer;
  let bob: TestUser;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob', 'linux');
  });
  afterAll(async () => server?.stop());

  async function platforms(): Promise<Record<string, string>> {
    const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, { headers: admin });
    const { devices } = (await response.json()) as { devices: Array<{ station: string; platform: string }> };
    return Object.fromEntries(devices.map((d) => [d.station, d.platform]));
  }

  it('a station gets its platform at login and can change it with chatdevice/register', async () => {
    const mac = new OzekiClient(server.http, newStation());
    await mac.login(bob.apikey, 'browser');
    expect((await platforms())[mac.station]).toBe('browser');
    const registered = await mac.ok('chatdevice', { action: 'register', platform: 'mac' });
    expect(registered.device).toMatchObject({ station: mac.station, platform: 'mac' });
    expect(await platforms()).toMatchObject({ [bob.client.station]: 'linux', [mac.station]: 'mac' });
    const refused = await mac.call('chatdevice', { action: 'register', platform: 'amiga' });
    expect(refused.httpStatus).toBe(400);
    expect(refused.body.errormessage).toBe('platform must be one of browser, windows, mac, linux, android, ios');
  });

  it("connecting and disconnecting move a device's last-seen time", async () => {
    const lastSeen = async () => {
      const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, { headers: admin });
      const { devices } = (await response.json()) as { devices: Array<{ station: string; lastseen: number }> };
      return devices.find((d) => d.station === bob.client.station)!.lastseen;
    };
    const atLogin = await lastSeen();
    const device = await connectDevice(server, bob.client.station);
    const atConnect = await waitFor(async () => ((await lastSeen()) > atLogin ? lastSeen() : 0), 5000, 'last seen at connect');
    device.receiver.close();
    await waitFor(async () => (await lastSeen()) > atConnect, 5000, 'last seen at disconnect');
  });

  it('a removed device is disconnected at once and cannot connect again', async () => {
    const tablet = new OzekiClient(server.http, newStation());
    await tablet.login(bob.apikey, 'browser');
    const device = await connectDevice(server, tablet.station);
    const refused = device.receiver.next('refused');
    expect((await tablet.call('chatconversation', { action: 'list' })).httpStatus).toBe(200);
    const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices/${tablet.station}`, {
      method: 'DELETE',
      headers: { 'ozeki-station': bob.client.station },
    });
    expect(response.status).toBe(204);
    expect(await refused).toEqual({ code: 4401, reason: 'this device was removed' });
    expect(Object.keys(await platforms())).not.toContain(tablet.station);
    const after = await tablet.call('chatconversation', { action: 'list' });
    expect(after.httpStatus).toBe(401);
    expect(after.body.errormessage).toBe('unknown station: log in with chatlogin first');

    const again = new WsReceiver({ url: server.app.endpoints.ws, station: tablet.station });
    const refusedAgain = again.next('refused');
    again.start();
    expect(await refusedAgain).toEqual({ code: 4401, reason: 'unknown station: log in with chatlogin first' });
  });

  it('the admin may name the user by e-mail address when removing a device', async () => {
    const laptop = new OzekiClient(server.http, newStation());
    await laptop.login(bob.apikey, 'linux');
    const path = `${server.http}/v1/users/${encodeURIComponent(bob.email)}/devices/${laptop.station}`;
    expect((await fetch(path, { method: 'DELETE', headers: admin })).status).toBe(204);
    expect(Object.keys(await platforms())).not.toContain(laptop.station);
    const again = await fetch(path, { method: 'DELETE', headers: admin });
    expect(again.status).toBe(404);
    expect(await again.json()).toEqual({ error: 'no such device' });
  });

  it(`a user keeps at most ${MAX_DEVICES_PER_USER} devices: one more login forgets and disconnects the one seen longest ago`, async () => {
    const dave = await addUser(server, 'Dave');
    const oldest = new OzekiClient(server.http, newStation());
    await oldest.login(dave.apikey, 'browser');
    const device = await connectDevice(server, oldest.station);
    const replaced = device.receiver.next('refused');
    // A call made, so the node knows the station's user from memory as well.
    await oldest.ok('chatconversation', { action: 'list' });
    const stations = async () => {
      const response = await fetch(`${server.http}/v1/users/${dave.userid}/devices`, { headers: admin });
      return ((await response.json()) as { devices: Array<{ station: string }> }).devices.map((d) => d.station);
    };
    // Dave's first client and `oldest` make two; fill up to the limit.
    for (let i = (await stations()).length; i < MAX_DEVICES_PER_USER; i++) {
      await new OzekiClient(server.http, newStation()).login(dave.apikey, 'browser');
    }
    expect(await stations()).toHaveLength(MAX_DEVICES_PER_USER);
    expect(await stations()).toContain(oldest.station);
    // Seen long ago, so it is the first to go whatever the clock's resolution.
    await server.app.parts.store.db.updateTable('devices').set({ last_seen_at: 1 }).where('station', '=', oldest.station).execute();

    const newest = new OzekiClient(server.http, newStation());
    await newest.login(dave.apikey, 'windows');
    const now = await stations();
    expect(now).toHaveLength(MAX_DEVICES_PER_USER);
    expect(now).toContain(newest.station);
    expect(now).toContain(dave.client.station);
    expect(now).not.toContain(oldest.station);
    expect(await replaced).toEqual({ code: 4401, reason: 'this device was replaced by newer ones' });
    const gone = await oldest.call('chatconversation', { action: 'list' });
    expect(gone.httpStatus).toBe(401);
  });
});
