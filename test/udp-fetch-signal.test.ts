import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { listen } from './helpers/udp.ts';

describeEachStore('UDP notifications too large for one datagram', (kind) => {
  let server: TestServer;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob', 'windows');
  });
  afterAll(async () => server?.stop());

  it('a notification that would not fit arrives as a short signal to fetch it, and every datagram stays under 1,200 bytes', async () => {
    const sizes: number[] = [];
    const { receiver, frames } = await listen(bob, {
      dropIncoming: (bytes) => {
        sizes.push(bytes.length);
        return false;
      },
    });
    try {
      const [small, large] = await server.app.parts.notifier.transact((_trx, emit) =>
        emit([
          { userId: bob.userid, type: 'test', title: 'small', data: { note: 'fits' } },
          { userId: bob.userid, type: 'test', title: 'large', data: { note: 'x'.repeat(3000) } },
        ]),
      );
      await waitFor(() => frames.length >= 2, 5000, 'both notifications');
      expect(frames[0]).toMatchObject({ type: 'notification', seq: small.seq, id: small.id, title: 'small' });
      expect(frames[1]).toEqual({
        type: 'fetch',
        seq: large.seq,
        id: large.id,
        kind: 'test',
        conversationid: null,
        badge: large.badge,
      });
      expect(Math.max(...sizes)).toBeLessThan(1200);
    } finally {
      await receiver.close();
    }
  });
});
