import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { OzekiClient } from '../client/ozeki.ts';

interface DeviceListing {
  station: string;
  platform: string;
  ackedseq: number;
  deliveredseq: number;
  lastseen: number;
}

describeEachStore('live push over WebSocket', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let bobLaptop: OzekiClient;
  let browser: RecordingReceiver;
  let laptop: RecordingReceiver;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'browser');
    await befriend(server, alice, bob);
    bobLaptop = new OzekiClient(server.http, newStation());
    await bobLaptop.login(bob.apikey, 'windows');
    browser = await connectDevice(server, bob.client.station);
    laptop = await connectDevice(server, bobLaptop.station, { secure: true, stationHeader: true });
  });
  afterAll(async () => {
    browser?.receiver.close();
    laptop?.receiver.close();
    await server?.stop();
  });

  async function devicesOfBob(auth: Record<string, string>) {
    const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, { headers: auth });
    return { status: response.status, body: (await response.json()) as { devices: DeviceListing[]; error?: string } };
  }

  it('Alice says hello, Bob reads, and both of his devices follow and acknowledge', async () => {
    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'hello-1', 'aGVsbG8=');

    for (const device of [browser, laptop]) {
      const message = await waitFor(
        () => device.frames.find((f) => f.type === 'notification' && f.kind === 'message'),
        5000,
        'the message notification',
      );
      expect(message).toMatchObject({
        type: 'notification',
        kind: 'message',
        title: '1 message from Alice',
        badge: 1,
        silent: false,
        conversationid: conversationId,
        sender: alice.userid,
      });
      expect(JSON.stringify(message)).not.toContain('aGVsbG8=');
    }

    await bob.client.viewed(conversationId, ['hello-1']);
    const cleans = [];
    for (const device of [browser, laptop]) {
      cleans.push(await waitFor(() => device.frames.find((f) => f.type === 'clean'), 5000, 'the clean push'));
    }
    for (const clean of cleans) expect(clean).toMatchObject({ type: 'clean', badge: 0, conversationid: conversationId });
    // Both devices saw the same notifications: same ids, same sequence numbers.
    expect(laptop.frames.map((f) => f.id)).toEqual(browser.frames.map((f) => f.id));
    const lastSeq = cleans[0].seq;

    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const acked = await waitFor(
      async () => {
        const { body } = await devicesOfBob(admin);
        return body.devices.every((d) => d.ackedseq === lastSeq) ? body.devices : undefined;
      },
      5000,
      'both acknowledgements to be recorded',
    );
    expect(acked.map((d) => d.station).sort()).toEqual([bob.client.station, bobLaptop.station].sort());
    expect(acked.map((d) => d.platform).sort()).toEqual(['browser', 'windows']);
    for (const device of acked) {
      expect(device.deliveredseq).toBe(lastSeq);
      expect(device.lastseen).toBeGreaterThan(Date.now() - 60_000);
    }
  });

  it("Bob may list his own devices, Alice may not list Bob's", async () => {
    const own = await devicesOfBob({ 'ozeki-station': bobLaptop.station });
    expect(own.status).toBe(200);
    expect(own.body.devices).toHaveLength(2);
    const other = await devicesOfBob({ 'ozeki-station': alice.client.station });
    expect(other.status).toBe(403);
    expect(other.body.error).toMatch(/own account/);
  });

  it('a device that acknowledges more than it was sent is told so', async () => {
    const error = browser.receiver.next('serverError');
    browser.receiver.ack(1_000_000);
    expect((await error).message).toMatch(/ack seq must be a whole number from 0 to \d+/);
  });
});
