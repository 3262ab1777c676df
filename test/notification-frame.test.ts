import { describe, expect, it } from 'vitest';
import { frameText, notificationId, parseNotificationId, toFrame, type Notification } from '../src/model/notification.ts';

const base: Notification = {
  id: notificationId(3, 7),
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

describe('notifications that share one data object', () => {
  it('each get their own frame around the one data text', () => {
    const shared = { messageid: 'm-9', unread: 2 };
    const other = { messageid: 'm-9', unread: 5 };
    const list = [1, 2, 3, 4].map((seq) => ({ ...base, seq, id: notificationId(seq, seq), data: seq === 3 ? other : shared }));
    for (const n of list) expect(JSON.parse(frameText(n))).toEqual(toFrame(n));
    expect(list.map((n) => JSON.parse(frameText(n)).data.unread)).toEqual([2, 2, 5, 2]);
  });
});

describe('notification ids', () => {
  const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('are UUID-shaped (version 8) and name the user key and sequence they were made from', () => {
    const cases: Array<[number, number]> = [
      [1, 1],
      [2, 1],
      [1, 2],
      [0xabcdef, 0x123456789],
      [2 ** 48 - 1, Number.MAX_SAFE_INTEGER],
    ];
    for (const [userKey, seq] of cases) {
      const id = notificationId(userKey, seq);
      expect(id).toMatch(UUID_V8);
      expect(parseNotificationId(id)).toEqual({ userKey, seq });
    }
    expect(notificationId(0x1234567890ab, 0xfff)).toBe('12345678-90ab-8000-8000-000000000fff');
  });

  it('are unique over users and sequence numbers', () => {
    const ids = new Set<string>();
    for (let userKey = 1; userKey <= 100; userKey++) for (let seq = 1; seq <= 100; seq++) ids.add(notificationId(userKey, seq));
    expect(ids.size).toBe(100 * 100);
  });

  it('are refused when they are not of that form', () => {
    for (const id of [
      '',
      'x',
      '12345678-90ab-7000-8000-000000000fff',
      '12345678-90AB-8000-8000-000000000FFF',
      '12345678-90ab-8000-8000-000000000fff0',
    ]) {
      expect(parseNotificationId(id)).toBeUndefined();
    }
  });
});
