import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { RawWeb3mqUser } from './helpers/web3mq.ts';

describeEachStore('the Web3MQ notification history and its sources, on $name', (kind) => {
  let server: TestServer;
  let alice: RawWeb3mqUser;
  let bob: RawWeb3mqUser;
  let carol: RawWeb3mqUser;
  let topicId: string;

  beforeAll(async () => {
    server = await startTestServer(kind);
    [alice, bob, carol] = await Promise.all([0, 1, 2].map(() => new RawWeb3mqUser(server.http).registerAndLogin()));
    const topic = await bob.signedPost('/api/create_topic/', { topic_name: 'news' }, []);
    topicId = topic.body.data.topicid;
    for (const subscriber of [alice, carol]) {
      const subscribed = await subscriber.signedPost('/api/subscribe_topic/', { topicid: topicId }, [topicId]);
      expect(subscribed.body.code).toBe(0);
    }
    // Alice's feed, oldest first: a friend request from Carol, then five topic messages, then an invitation.
    await carol.signedPost('/api/contacts/add_friends/', { target_userid: alice.userid, content: 'hello' }, [alice.userid, 'hello']);
    for (let i = 1; i <= 5; i++) {
      const published = await bob.signedPost(
        '/api/publish_topic_message/',
        { topicid: topicId, title: `issue ${i}`, content: `text ${i}` },
        [topicId],
      );
      expect(published.body.code).toBe(0);
    }
    await bob.signedPost('/api/group_invitation/', { groupid: 'group:book-club', members: [alice.userid, carol.userid] }, [
      'group:book-club',
    ]);
  });
  afterAll(async () => server?.stop());

  it('the history is newest first and total counts everything that matches', async () => {
    const reply = await alice.history({ page: 1, size: 100 });
    expect(reply.body.data.total).toBe(7);
    expect(reply.body.data.result.map((n: { payload: { type: string } }) => n.payload.type)).toEqual([
      'system.group_invitation',
      'subscription',
      'subscription',
      'subscription',
      'subscription',
      'subscription',
      'system.friend_request',
    ]);
    const times = reply.body.data.result.map((n: { timestamp: number }) => n.timestamp);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('pages start at 1 and hold at most size entries; total stays the filtered count', async () => {
    const titles = async (page: number) => {
      const reply = await alice.history({ notice_type: 'subscription', page, size: 2 });
      expect(reply.body.data.total).toBe(5);
      return reply.body.data.result.map((n: { payload: { title: string } }) => n.payload.title);
    };
    expect(await titles(1)).toEqual(['issue 5', 'issue 4']);
    expect(await titles(2)).toEqual(['issue 3', 'issue 2']);
    expect(await titles(3)).toEqual(['issue 1']);
    expect(await titles(4)).toEqual([]);
  });

  it('notice_type filters each kind of notification', async () => {
    const friendRequests = await alice.history({ notice_type: 'system.friend_request' });
    expect(friendRequests.body.data.total).toBe(1);
    expect(friendRequests.body.data.result[0]).toMatchObject({ from: carol.userid, topic: alice.userid, payload: { content: 'hello' } });
    const invitations = await alice.history({ notice_type: 'system.group_invitation' });
    expect(invitations.body.data.result).toHaveLength(1);
    expect(invitations.body.data.result[0]).toMatchObject({ from: bob.userid, payload: { content: 'group:book-club' } });
    expect((await alice.history({ notice_type: 'system.agree_friend_request' })).body.data).toEqual({ total: 0, result: [] });
  });

  it('topic filters by the topic id, and the own userid is the topic of system notifications', async () => {
    const topic = await alice.history({ topic: topicId, size: 10 });
    expect(topic.body.data.total).toBe(5);
    expect(topic.body.data.result.every((n: { topic: string; from: string }) => n.topic === topicId && n.from === bob.userid)).toBe(true);
    const system = await alice.history({ topic: alice.userid });
    expect(system.body.data.result.map((n: { payload: { type: string } }) => n.payload.type)).toEqual([
      'system.group_invitation',
      'system.friend_request',
    ]);
  });

  it("every subscriber gets a topic message, the publisher does not, and no one sees another's notifications", async () => {
    const carolsTopic = await carol.history({ topic: topicId, size: 10 });
    expect(carolsTopic.body.data.total).toBe(5);
    const aliceIds = new Set((await alice.history({ size: 100 })).body.data.result.map((n: { messageid: string }) => n.messageid));
    const carolAll = (await carol.history({ size: 100 })).body.data.result as Array<{ messageid: string; payload: { type: string } }>;
    expect(carolAll.some((n) => aliceIds.has(n.messageid))).toBe(false);
    expect(carolAll.filter((n) => n.payload.type === 'system.group_invitation')).toHaveLength(1);
    // Bob published and invited; he received nothing.
    expect((await bob.history({})).body.data).toEqual({ total: 0, result: [] });
  });

  it('agreeing to a friend request makes the two friends and tells the requester; agreeing again is refused', async () => {
    const agreed = await alice.signedPost('/api/contacts/friend_requests/', { target_userid: carol.userid, action: 'agree' }, [
      'agree',
      carol.userid,
    ]);
    expect(agreed.body).toEqual({ code: 0, msg: 'ok' });
    const friendships = await server.app.parts.store.db
      .selectFrom('friendships')
      .selectAll()
      .where('user_id', 'in', [alice.userid, carol.userid])
      .execute();
    expect(friendships.map((f) => `${f.user_id}>${f.friend_id}`).sort()).toEqual(
      [`${alice.userid}>${carol.userid}`, `${carol.userid}>${alice.userid}`].sort(),
    );
    const told = await carol.history({ notice_type: 'system.agree_friend_request' });
    expect(told.body.data.result).toHaveLength(1);
    expect(told.body.data.result[0].from).toBe(alice.userid);

    const again = await alice.signedPost('/api/contacts/friend_requests/', { target_userid: carol.userid, action: 'agree' }, [
      'agree',
      carol.userid,
    ]);
    expect(again.status).toBe(404);
    expect(again.body.msg).toMatch(/no pending friend request/);
    const friendsAgain = await carol.signedPost('/api/contacts/add_friends/', { target_userid: alice.userid, content: '' }, [
      alice.userid,
      '',
    ]);
    expect(friendsAgain.status).toBe(409);
  });

  it('the same friend request sent twice at once is accepted once and refused once', async () => {
    const dave = await new RawWeb3mqUser(server.http).registerAndLogin();
    const replies = await Promise.all(
      [1, 2].map((i) =>
        dave.signedPost('/api/contacts/add_friends/', { target_userid: bob.userid, content: 'hi' }, [bob.userid, 'hi'], Date.now() + i),
      ),
    );
    expect(replies.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(replies.find((r) => r.status === 409)!.body).toEqual({ code: 409, msg: `a friend request to ${bob.userid} is already pending` });
    const told = await bob.history({ notice_type: 'system.friend_request' });
    expect(told.body.data.total).toBe(1);
    await bob.signedPost('/api/contacts/friend_requests/', { target_userid: dave.userid, action: 'agree' }, ['agree', dave.userid]);
  });

  it('only the creator publishes to a topic and only group members invite', async () => {
    const publish = await alice.signedPost('/api/publish_topic_message/', { topicid: topicId, title: 't', content: 'c' }, [topicId]);
    expect(publish.status).toBe(403);
    expect(publish.body).toEqual({ code: 403, msg: 'only the creator of a topic may publish to it' });
    const stranger = await new RawWeb3mqUser(server.http).registerAndLogin();
    const invite = await stranger.signedPost('/api/group_invitation/', { groupid: 'group:book-club', members: [bob.userid] }, [
      'group:book-club',
    ]);
    expect(invite.status).toBe(403);
    const unknownTopic = await alice.signedPost('/api/subscribe_topic/', { topicid: 'topic:none' }, ['topic:none']);
    expect(unknownTopic.status).toBe(404);
    expect((await bob.history({ notice_type: 'system.group_invitation' })).body.data.total).toBe(0);
  });
});
