import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { OzekiClient, ozekiTime } from '../client/ozeki.ts';
import type { NotificationFrame } from '../client/ws-receiver.ts';

describeEachStore('what devices are told over WebSocket', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let bobDevice: RecordingReceiver;
  let alicePhone: RecordingReceiver;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    carol = await addUser(server, 'Carol');
    await befriend(server, alice, bob);
    const phone = new OzekiClient(server.http, newStation());
    await phone.login(alice.apikey, 'android');
    alicePhone = await connectDevice(server, phone.station);
    bobDevice = await connectDevice(server, bob.client.station);
  });
  afterAll(async () => {
    bobDevice?.receiver.close();
    alicePhone?.receiver.close();
    await server?.stop();
  });

  /**
   * The next message notification of a device after the ones it already has. (A list change
   * of the conversation may still be on its way when this starts looking, so it is skipped.)
   */
  async function nextNotification(device: RecordingReceiver, what: string): Promise<NotificationFrame> {
    const seen = device.frames.length;
    return (await waitFor(
      () => device.frames.slice(seen).find((f) => f.type === 'notification' && f.kind === 'message'),
      5000,
      what,
    )) as NotificationFrame;
  }

  it('a group message says who, how many and where, and the badge counts every unread message', async () => {
    const group = await alice.client.createConversation([bob.userid, carol.userid], { displayname: 'Project X' });
    const groupId = (group.conversation as { id: string }).id;
    let next = nextNotification(bobDevice, 'the first group message');
    await alice.client.addMessage(groupId, 'g-1', 'c2VjcmV0');
    const first = await next;
    next = nextNotification(bobDevice, 'the second group message');
    await alice.client.addMessage(groupId, 'g-2', 'c2VjcmV0');
    const second = await next;
    expect(first).toMatchObject({ kind: 'message', title: '1 message from Alice in Project X', conversationid: groupId });
    expect(second).toMatchObject({ title: '2 messages from Alice in Project X', badge: first.badge + 1, silent: false });
    expect(second.seq).toBe(first.seq + 1);
  });

  it("a muted conversation still moves Bob's badge but its notification is silent", async () => {
    const direct = await bob.client.createConversation([alice.userid]);
    const directId = (direct.conversation as { id: string }).id;
    await bob.client.ok('chatconversation', { action: 'mute', conversationid: directId, instance: '' });
    // The mute itself is a silent list change.
    const next = waitFor(
      () => bobDevice.frames.find((f) => f.type === 'notification' && f.kind === 'message' && f.conversationid === directId),
      5000,
      'the muted message',
    );
    await alice.client.addMessage(directId, 'm-1', 'c2VjcmV0');
    const muted = (await next) as NotificationFrame;
    expect(muted).toMatchObject({ title: '1 message from Alice', silent: true });
    const previous = bobDevice.frames.filter((f) => f.seq < muted.seq).at(-1)!;
    expect(muted.badge).toBe(previous.badge + 1);
  });

  it("the sender's other devices get a silent sync, not an alert", async () => {
    const direct = await alice.client.createConversation([bob.userid]);
    const directId = (direct.conversation as { id: string }).id;
    const next = waitFor(
      () => alicePhone.frames.find((f) => f.type === 'notification' && f.kind === 'message' && f.data.messageid === 'sync-1'),
      5000,
      "the sync on Alice's phone",
    );
    await alice.client.addMessage(directId, 'sync-1', 'c2VjcmV0');
    expect(await next).toMatchObject({ title: 'Message sent', silent: true, sender: alice.userid, conversationid: directId });
  });

  it("Alice's availability reaches her friend Bob's devices and his change feed", async () => {
    const since = ozekiTime(new Date(Date.now() - 1000));
    const next = waitFor(() => bobDevice.frames.find((f) => f.type === 'notification' && f.kind === 'availability'), 5000, 'availability');
    await alice.client.ok('chatavailability', { action: 'useraway' });
    expect(await next).toMatchObject({
      title: 'Alice is away',
      silent: true,
      sender: alice.userid,
      data: { userid: alice.userid, availability: 'away' },
    });
    const changes = await bob.client.changesSince(since);
    expect(changes.friendavailabilitesof).toEqual([alice.userid]);
    // Carol is no friend of Alice's: her feed says nothing about it.
    const carolChanges = await carol.client.changesSince(since);
    expect(carolChanges.friendavailabilitesof).toEqual([]);
  });
});
