import { createRequire } from 'node:module';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { RawWeb3mqUser, newEd25519Key, type Ed25519Key } from './helpers/web3mq.ts';
import {
  RawLiveSocket,
  connectCommandBytes,
  decodeFields,
  decodeMessageItem,
  installBrowserGlobals,
  trustingWebSocket,
  pingBytes,
} from './helpers/web3mq-live.ts';

type Sdk = typeof import('@web3mq/client');
type SdkClient = InstanceType<Sdk['Client']>;

/** What the SDK hands the app for each live notification: the payload, messageId and read. */
interface SdkNotification {
  title: string;
  content: string;
  type: string;
  version: number;
  timestamp: number;
  messageId: string;
  read: boolean;
}

const PB = { connectReq: 2, connectResp: 3, notificationList: 20, ping: 128, pong: 129 };

describeEachStore('Web3MQ live notifications at /messages', (kind) => {
  let server: TestServer;
  let sdk: Sdk;
  let alice: RawWeb3mqUser;
  let bob: RawWeb3mqUser;
  let carol: RawWeb3mqUser;
  const clients: SdkClient[] = [];
  const sockets: RawLiveSocket[] = [];

  beforeAll(async () => {
    server = await startTestServer(kind);
    installBrowserGlobals(trustingWebSocket(server.ca));
    sdk = createRequire(import.meta.url)('@web3mq/client') as Sdk;
    // The SDK opens wss://<host:port of connectUrl>/messages, so it is pointed at the HTTPS port.
    await sdk.Client.init({ connectUrl: server.https, app_key: 'herald-test' });
    [alice, bob, carol] = await Promise.all([0, 1, 2].map(() => new RawWeb3mqUser(server.http).registerAndLogin()));
  });
  afterAll(async () => {
    for (const client of clients) client.connect.ws?.close();
    for (const socket of sockets) socket.close();
    await server?.stop();
  });

  /** The official SDK logged in as `user`, its socket authenticated, recording what it is told. */
  async function sdkClientOf(user: RawWeb3mqUser): Promise<{ client: SdkClient; received: SdkNotification[] }> {
    const client = new sdk.Client({ PrivateKey: user.tempKey.privateHex, PublicKey: user.tempKey.publicHex, userid: user.userid });
    clients.push(client);
    const received: SdkNotification[] = [];
    client.on('notification.received', (event: { data: SdkNotification[] }) => received.push(...event.data));
    // The SDK keeps the ConnectResp's nodeId; it raises no event of its own for it.
    await waitFor(() => client.connect.nodeId === 'herald', 5000, `the ConnectResp to ${user.userid}`);
    return { client, received };
  }

  /** A ConnectReq exactly as the SDK builds one: msgSign signs nodeId + userId + timestamp. */
  async function connectReq(userId: string, key: Ed25519Key, timestamp = Date.now(), signedTimestamp = timestamp): Promise<Uint8Array> {
    const msgSign = await sdk.getDataSignature(key.privateHex, 'nodeId' + userId + signedTimestamp);
    return sdk.GetContactBytes(PB.connectReq, connectCommandBytes({ nodeId: 'nodeId', userId, timestamp, msgSign }));
  }

  function rawSocket(secure = false): RawLiveSocket {
    const socket = secure
      ? new RawLiveSocket(`${server.https.replace('https:', 'wss:')}/messages`, { ca: server.ca })
      : new RawLiveSocket(`${server.http.replace('http:', 'ws:')}/messages`);
    sockets.push(socket);
    return socket;
  }

  async function newestHistoryItem(user: RawWeb3mqUser) {
    const history = await user.history({ size: 1 });
    expect(history.body.code).toBe(0);
    return history.body.data.result[0];
  }

  it("Alice's SDK connects to wss://…/messages and gets Bob's friend request live, as her history lists it", async () => {
    const { client, received } = await sdkClientOf(alice);
    expect((client.connect.ws as unknown as { url: string }).url).toBe(`${server.https.replace('https:', 'wss:')}/messages`);

    const asked = await bob.signedPost('/api/contacts/add_friends/', { target_userid: alice.userid, content: 'Bob here' }, [
      alice.userid,
      'Bob here',
    ]);
    expect(asked.body).toEqual({ code: 0, msg: 'ok' });

    const [live] = await waitFor(() => received.length > 0 && received, 5000, 'the friend request through notification.received');
    const item = await newestHistoryItem(alice);
    expect(item.payload.type).toBe('system.friend_request');
    expect(live).toEqual({ ...item.payload, version: 1, timestamp: item.timestamp, messageId: item.messageid, read: false });
    expect(live.content).toBe('Bob here');
    expect(received).toHaveLength(1);
  });

  it('over plain ws a client gets ConnectResp, Pong for Ping, and MessageItems that mirror the history field by field', async () => {
    const socket = rawSocket();
    await socket.send(await connectReq(alice.userid, alice.tempKey));
    const resp = decodeFields(await socket.next(PB.connectResp));
    expect(resp.find((f) => f.field === 1)?.value.toString()).toBe('herald');
    expect(resp.find((f) => f.field === 2)?.value.toString()).toBe(alice.userid);

    await socket.send(sdk.GetContactBytes(PB.ping, pingBytes(Date.now())));
    const pong = decodeFields(await socket.next(PB.pong));
    expect(pong).toEqual([{ field: 3, value: expect.any(BigInt) }]);

    const invited = await bob.signedPost('/api/group_invitation/', { groupid: 'group:walk', members: [alice.userid] }, ['group:walk']);
    expect(invited.body.code).toBe(0);
    const list = decodeFields(await socket.next(PB.notificationList));
    expect(list.map((f) => f.field)).toEqual([1]);
    const item = await newestHistoryItem(alice);
    expect(decodeMessageItem(list[0].value as Buffer)).toEqual({
      messageId: item.messageid,
      version: item.version,
      payload: { ...item.payload, version: item.version, timestamp: item.timestamp },
      payloadType: item.payload_type,
      comeFrom: item.from,
      fromSign: item.from_sign,
      contentTopic: item.topic,
      cipherSuite: item.cipher_suite,
      timestamp: item.timestamp,
      // read is false: proto3 leaves it out, and the SDK reads it back as false.
    });
    expect(item).toMatchObject({ from: bob.userid, topic: alice.userid, read: false, payload: { type: 'system.group_invitation' } });
  });

  it('a bad signature, a stale timestamp, an unknown key or the main key is refused with a close reason that says so', async () => {
    const stranger = newEd25519Key();
    const sixMinutesAgo = Date.now() - 6 * 60 * 1000;
    const cases: Array<[string, () => Promise<Uint8Array>, { code: number; reason: string }]> = [
      [
        'bad signature',
        () => connectReq(alice.userid, alice.tempKey, Date.now(), Date.now() + 1),
        { code: 4401, reason: 'bad signature: msgSign does not verify with a login key of this userId' },
      ],
      [
        'stale timestamp',
        () => connectReq(alice.userid, alice.tempKey, sixMinutesAgo),
        { code: 4401, reason: "timestamp is more than 5 minutes away from the server's time" },
      ],
      [
        'unknown key',
        () => connectReq(alice.userid, stranger),
        { code: 4401, reason: 'bad signature: msgSign does not verify with a login key of this userId' },
      ],
      [
        'main key',
        () => connectReq(alice.userid, alice.mainKey),
        { code: 4401, reason: 'the main key only signs logins; sign with the temporary key' },
      ],
      ['unknown user', () => connectReq('user:nobody', stranger), { code: 4401, reason: 'no login key for this userId: log in first' }],
      [
        'a Ping first',
        async () => sdk.GetContactBytes(PB.ping, pingBytes(Date.now())),
        { code: 4400, reason: 'the first frame must be a ConnectReq (pbType 2)' },
      ],
    ];
    const outcomes = await Promise.all(
      cases.map(async ([name, build], index) => {
        const socket = rawSocket(index % 2 === 0);
        await socket.send(await build());
        return { name, closed: await socket.closed, frames: socket.frames.length };
      }),
    );
    expect(outcomes).toEqual(cases.map(([name, , closed]) => ({ name, closed, frames: 0 })));
  });

  it("Carol never receives Alice's notifications, and Carol's key cannot open Alice's socket", async () => {
    const impostor = rawSocket(true);
    await impostor.send(await connectReq(alice.userid, carol.tempKey));
    expect(await impostor.closed).toEqual({ code: 4401, reason: 'bad signature: msgSign does not verify with a login key of this userId' });

    const { received: carolReceived } = await sdkClientOf(carol);
    const aliceClient = clients[0];
    const aliceReceived: SdkNotification[] = [];
    aliceClient.on('notification.received', (event: { data: SdkNotification[] }) => aliceReceived.push(...event.data));

    // Alice's invitation is committed, and pushed, before Carol's: had it leaked to Carol's
    // socket, it would be there ahead of her own.
    const toAlice = await bob.signedPost('/api/group_invitation/', { groupid: 'group:run', members: [alice.userid] }, ['group:run']);
    expect(toAlice.body.code).toBe(0);
    const toCarol = await bob.signedPost('/api/contacts/add_friends/', { target_userid: carol.userid, content: 'hi Carol' }, [
      carol.userid,
      'hi Carol',
    ]);
    expect(toCarol.body.code).toBe(0);

    await waitFor(() => carolReceived.length > 0, 5000, "Carol's friend request");
    await waitFor(() => aliceReceived.length > 0, 5000, "Alice's group invitation");
    const carolItem = await newestHistoryItem(carol);
    const aliceItem = await newestHistoryItem(alice);
    expect(carolReceived.map((n) => [n.messageId, n.content])).toEqual([[carolItem.messageid, 'hi Carol']]);
    expect(aliceReceived.map((n) => [n.messageId, n.type])).toEqual([[aliceItem.messageid, 'system.group_invitation']]);
  });
});
