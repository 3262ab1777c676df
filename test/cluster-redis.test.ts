import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES, SQLITE, TEST_REDIS_URL } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { connectDevice } from './helpers/websocket.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { RawWeb3mqUser, post } from './helpers/web3mq.ts';
import { RedisBus } from '../src/cluster/redis-bus.ts';
import type { LiveConnection } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import type { Store } from '../src/store/db.ts';

if (!TEST_REDIS_URL) console.warn('HERALD_TEST_REDIS_URL is unset: the multi-node Redis bus test is skipped');

describe.skipIf(!TEST_REDIS_URL)('two nodes joined by the Redis bus', () => {
  let store: Store;
  let nodeA: TestServer;
  let nodeB: TestServer;

  beforeAll(async () => {
    const kind = POSTGRES ?? SQLITE;
    store = await kind.open();
    const [busA, busB] = [await RedisBus.connect(TEST_REDIS_URL!), await RedisBus.connect(TEST_REDIS_URL!)];
    nodeA = await startTestServer(kind, {}, { store, bus: busA, spentSignatures: busA });
    nodeB = await startTestServer(kind, {}, { store, bus: busB, spentSignatures: busB });
  });
  afterAll(async () => {
    await nodeA?.stop();
    await nodeB?.stop();
    await store?.close();
  });

  it("a message sent through node A reaches Bob's device connected to node B", async () => {
    const alice = await addUser(nodeA, 'Alice');
    const bob = await addUser(nodeA, 'Bob');
    const received: Notification[] = [];
    const connection: LiveConnection = {
      userId: bob.userid,
      station: bob.client.station,
      channel: 'ws',
      deliver: (notification) => received.push(notification),
    };
    nodeB.app.parts.hub.add(connection);
    const { conversation } = await alice.client.createConversation([bob.userid]);
    const id = (conversation as { id: string }).id;
    await alice.client.addMessage(id, 'across', 'eA==');
    const message = await waitFor(() => received.find((n) => n.type === 'message'), 5000, 'the message on node B');
    expect(message).toMatchObject({ userId: bob.userid, title: '1 message from Alice', badge: 1, conversationId: id });
    // Node A holds no connection of Bob's: nothing was delivered there.
    expect(nodeA.app.parts.hub.connectionsOf(bob.userid)).toBeUndefined();
    nodeB.app.parts.hub.remove(connection);
  });

  it('removing a device through node A ends its WebSocket on node B', async () => {
    const carol = await addUser(nodeA, 'Carol');
    const tablet = new OzekiClient(nodeA.http, newStation());
    await tablet.login(carol.apikey, 'browser');
    const device = await connectDevice(nodeB, tablet.station);
    const refused = device.receiver.next('refused');
    expect(nodeB.app.parts.hub.connectionsOf(carol.userid)?.size).toBe(1);
    // Node B has answered the tablet, so it knows the tablet's user from memory.
    const onB = new OzekiClient(nodeB.http, tablet.station);
    expect((await onB.call('chatconversation', { action: 'list' })).httpStatus).toBe(200);

    const response = await fetch(`${nodeA.http}/v1/users/${carol.userid}/devices/${tablet.station}`, {
      method: 'DELETE',
      headers: { 'ozeki-station': carol.client.station },
    });
    expect(response.status).toBe(204);
    expect(await refused).toEqual({ code: 4401, reason: 'this device was removed' });
    await waitFor(() => nodeB.app.parts.hub.connectionsOf(carol.userid) === undefined, 5000, 'the connection to leave node B');
    // The disconnect reached node B before the socket closed: its memory of the station is gone too.
    expect((await onB.call('chatconversation', { action: 'list' })).httpStatus).toBe(401);
  });

  it('a Web3MQ signature spent on node A is refused on node B, and a history read may repeat on either', async () => {
    const dana = await new RawWeb3mqUser(nodeA.http).registerAndLogin();
    const timestamp = dana.nextTimestamp();
    const body = {
      userid: dana.userid,
      timestamp,
      web3mq_signature: dana.tempKey.sign(dana.userid + timestamp),
      topic_name: 'across nodes',
    };
    const first = await post(nodeA.http, '/api/create_topic/', body, dana.headers());
    expect(first.body.code).toBe(0);
    const replayed = await post(nodeB.http, '/api/create_topic/', body, dana.headers());
    expect(replayed).toEqual({
      status: 409,
      body: { code: 409, msg: 'this signed request was already used; sign it again with a new timestamp' },
    });

    // A history read may be repeated, on any node; its signature is then spent for writes everywhere.
    const readAt = dana.nextTimestamp();
    const readSignature = dana.tempKey.sign(dana.userid + readAt);
    const query = new URLSearchParams({
      userid: dana.userid,
      timestamp: String(readAt),
      web3mq_signature: readSignature,
      page: '1',
      size: '10',
    });
    for (const node of [nodeA, nodeB, nodeA]) {
      const read = await fetch(`${node.http}/api/notification/history/?${query}`, { headers: dana.headers() });
      expect(read.status).toBe(200);
    }
    const write = await post(
      nodeB.http,
      '/api/create_topic/',
      { userid: dana.userid, timestamp: readAt, web3mq_signature: readSignature, topic_name: 'x' },
      dana.headers(),
    );
    expect(write.status).toBe(409);
  });
});
