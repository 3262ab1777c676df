import { describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from './helpers/stores.ts';
import { useRedisNodes } from './helpers/redis-nodes.ts';
import { addUser, newStation, waitFor } from './helpers/server.ts';
import { connectDevice } from './helpers/websocket.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { RawWeb3mqUser, post } from './helpers/web3mq.ts';
import type { LiveConnection } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';

if (!TEST_REDIS_URL) console.warn('HERALD_TEST_REDIS_URL is unset: the multi-node Redis bus test is skipped');

describe.skipIf(!TEST_REDIS_URL)('two nodes joined by the Redis bus', () => {
  const nodes = useRedisNodes();

  it("a message sent through node A reaches Bob's device connected to node B", async () => {
    const alice = await addUser(nodes.a, 'Alice');
    const bob = await addUser(nodes.a, 'Bob');
    const received: Notification[] = [];
    const connection: LiveConnection = {
      userId: bob.userid,
      station: bob.client.station,
      channel: 'ws',
      deliver: (notification) => received.push(notification),
    };
    nodes.b.app.parts.hub.add(connection);
    const { conversation } = await alice.client.createConversation([bob.userid]);
    const id = (conversation as { id: string }).id;
    await alice.client.addMessage(id, 'across', 'eA==');
    const message = await waitFor(() => received.find((n) => n.type === 'message'), 5000, 'the message on node B');
    expect(message).toMatchObject({ userId: bob.userid, title: '1 message from Alice', badge: 1, conversationId: id });
    // Node A holds no connection of Bob's: nothing was delivered there.
    expect(nodes.a.app.parts.hub.connectionsOf(bob.userid)).toBeUndefined();
    nodes.b.app.parts.hub.remove(connection);
  });

  it('removing a device through node A ends its WebSocket on node B', async () => {
    const carol = await addUser(nodes.a, 'Carol');
    const tablet = new OzekiClient(nodes.a.http, newStation());
    await tablet.login(carol.apikey, 'browser');
    const device = await connectDevice(nodes.b, tablet.station);
    const refused = device.receiver.next('refused');
    expect(nodes.b.app.parts.hub.connectionsOf(carol.userid)?.size).toBe(1);
    // Node B has answered the tablet, so it knows the tablet's user from memory.
    const onB = new OzekiClient(nodes.b.http, tablet.station);
    expect((await onB.call('chatconversation', { action: 'list' })).httpStatus).toBe(200);

    const response = await fetch(`${nodes.a.http}/v1/users/${carol.userid}/devices/${tablet.station}`, {
      method: 'DELETE',
      headers: { 'ozeki-station': carol.client.station },
    });
    expect(response.status).toBe(204);
    expect(await refused).toEqual({ code: 4401, reason: 'this device was removed' });
    await waitFor(() => nodes.b.app.parts.hub.connectionsOf(carol.userid) === undefined, 5000, 'the connection to leave node B');
    // The disconnect reached node B before the socket closed: its memory of the station is gone too.
    expect((await onB.call('chatconversation', { action: 'list' })).httpStatus).toBe(401);
  });

  it('a Web3MQ signature spent on node A is refused on node B, and a history read may repeat on either', async () => {
    const dana = await new RawWeb3mqUser(nodes.a.http).registerAndLogin();
    const timestamp = dana.nextTimestamp();
    const body = {
      userid: dana.userid,
      timestamp,
      web3mq_signature: dana.tempKey.sign(dana.userid + timestamp),
      topic_name: 'across nodes',
    };
    const first = await post(nodes.a.http, '/api/create_topic/', body, dana.headers());
    expect(first.body.code).toBe(0);
    const replayed = await post(nodes.b.http, '/api/create_topic/', body, dana.headers());
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
    for (const node of [nodes.a, nodes.b, nodes.a]) {
      const read = await fetch(`${node.http}/api/notification/history/?${query}`, { headers: dana.headers() });
      expect(read.status).toBe(200);
    }
    const write = await post(
      nodes.b.http,
      '/api/create_topic/',
      { userid: dana.userid, timestamp: readAt, web3mq_signature: readSignature, topic_name: 'x' },
      dana.headers(),
    );
    expect(write.status).toBe(409);
  });
});
