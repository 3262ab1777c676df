import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WsReceiver, type FeedFrame } from '../client/ws-receiver.ts';
import type { UdpFrame } from '../client/udp-receiver.ts';
import { SQLITE } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { listen } from './helpers/udp.ts';

/** Collects what a `for await` loop over `source` yields until it ends; the loop runs in the background. */
function drain<T>(source: AsyncIterable<T>) {
  const items: T[] = [];
  const ended = (async () => {
    for await (const item of source) items.push(item);
  })();
  return { items, ended };
}

describe('the client receivers as async iterables', () => {
  let server: TestServer;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(SQLITE);
    bob = await addUser(server, 'Bob', 'windows');
  });
  afterAll(async () => server?.stop());

  const notify = (title: string) => server.app.parts.notifier.transact((_trx, emit) => emit([{ userId: bob.userid, type: 'test', title }]));

  it('Bob loops over his WebSocket receiver: each notification once, in order, and the loop ends when he closes it', async () => {
    const receiver = new WsReceiver({ url: server.app.endpoints.wss, station: bob.client.station, ca: server.ca });
    const loop = drain<FeedFrame>(receiver);
    const synced = receiver.next('synced');
    receiver.start();
    try {
      await synced;
      const sent = [];
      for (const title of ['one', 'two', 'three']) sent.push(...(await notify(title)));
      await waitFor(() => loop.items.length >= 3, 5000, 'three frames through the loop');
      expect(loop.items.map((frame) => [frame.type, frame.seq, frame.id])).toEqual(sent.map((n) => ['notification', n.seq, n.id]));
      expect(loop.items.map((frame) => (frame.type === 'notification' ? frame.title : ''))).toEqual(['one', 'two', 'three']);
    } finally {
      receiver.close();
    }
    await loop.ended;
    // A loop begun after close() ends at once.
    expect(await receiver[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
  });

  it('a loop that breaks early stops taking frames; one that waits keeps what came meanwhile', async () => {
    const live = new WsReceiver({ url: server.app.endpoints.ws, station: bob.client.station });
    const first = live[Symbol.asyncIterator]();
    const second = live[Symbol.asyncIterator]();
    const synced = live.next('synced');
    live.start();
    try {
      await synced;
      const [a] = await notify('kept while nobody asked');
      const [b] = await notify('second');
      await live.next('notification', (frame) => frame.id === b.id);
      // Nobody called next() yet: both streams kept both frames.
      expect((await first.next()).value).toMatchObject({ id: a.id });
      await first.return!();
      expect(await first.next()).toEqual({ value: undefined, done: true });
      expect((await second.next()).value).toMatchObject({ id: a.id });
      expect((await second.next()).value).toMatchObject({ id: b.id });
    } finally {
      live.close();
    }
    expect(await second.next()).toEqual({ value: undefined, done: true });
  });

  it('a loop over a refused station throws the refusal instead of waiting forever', async () => {
    // A station that never logged in is refused with 4401.
    const receiver = new WsReceiver({ url: server.app.endpoints.ws, station: newStation() });
    const loop = drain<FeedFrame>(receiver);
    receiver.start();
    try {
      await expect(loop.ended).rejects.toThrow(/refused this station: 44\d\d/);
    } finally {
      receiver.close();
    }
  });

  it('Bob loops over his UDP receiver on the desktop: each push once, ending at close', async () => {
    const { receiver } = await listen(bob, { keepAliveMs: 0 });
    const loop = drain<UdpFrame>(receiver);
    try {
      const sent = [...(await notify('udp one')), ...(await notify('udp two'))];
      await waitFor(() => loop.items.length >= 2, 5000, 'two pushes through the loop');
      expect(loop.items.map((frame) => [frame.seq, frame.id])).toEqual(sent.map((n) => [n.seq, n.id]));
    } finally {
      await receiver.close();
    }
    await loop.ended;
    expect(loop.items).toHaveLength(2);
  });
});
