import { describe, expect, it } from 'vitest';
import { frameText, toFrame, type Notification } from '../src/notify/model.ts';
import { newNotificationId } from '../src/notify/feed.ts';

const base: Notification = {
  id: newNotificationId(),
  userId: 'u1',
  seq: 7,
  type: 'message',
  conversationId: 'c0ffee',
  senderId: 'a1',
  title: '3 messages from Alice',
  body: '',
  badge: 12,
  silent: false,
  data: { messageid: 'm-1', unread: 3 },
  createdAt: 1_790_000_000_123,
};

describe('the live frame of a notification', () => {
  const cases: Array<[string, Partial<Notification>]> = [
    ['a message', {}],
    ['a silent sync without conversation or sender', { silent: true, conversationId: null, senderId: null }],
    ['text that needs escaping', { title: '2 messages from "Zoë" \\ \u2028 <b>', body: 'line\nbreak\ttab \u0001' }],
    ['nested data', { type: 'subscription', data: { topic: 't', content: { a: [1, 'two', null] } } }],
    ['a clean push', { type: 'clean', title: 'read', badge: 0 }],
  ];
  it.each(cases)('is the JSON of its frame object: %s', (_name, change) => {
    const n = { ...base, ...change };
    const text = frameText(n);
    expect(text).toBe(JSON.stringify(toFrame(n)));
    expect(JSON.parse(text)).toEqual(toFrame(n));
  });
});

describe('frames of many notifications in a row', () => {
  it('each is the JSON of its own frame object, whichever came before it', () => {
    const variants: Array<Partial<Notification>> = [
      {},
      { conversationId: 'other', senderId: null, title: '1 message from Bob', body: 'x' },
      { conversationId: null, type: 'availability', title: 'Bob is away' },
      { title: '3 messages from Alice' },
      { conversationId: 'c0ffee', senderId: 'b2', body: '"quoted"' },
    ];
    for (let i = 0; i < 50; i++) {
      const n = { ...base, ...variants[(i * 7) % variants.length], seq: i, data: { i } };
      expect(frameText(n)).toBe(JSON.stringify(toFrame(n)));
    }
  });
});

describe('notification ids', () => {
  it('are unique, UUID-shaped (version 7 layout) and ordered by time', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => newNotificationId(1_790_000_000_000 + Math.floor(i / 100)));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 50)) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const byTime = [newNotificationId(1_790_000_000_000), newNotificationId(1_790_000_000_001), newNotificationId(1_800_000_000_000)];
    expect([...byTime].sort()).toEqual(byTime);
  });
});
