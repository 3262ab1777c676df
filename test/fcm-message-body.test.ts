import { describe, expect, it } from 'vitest';
import { FcmBodies, fcmMessage } from '../src/channels/fcm/payload.ts';
import type { Notification } from '../src/model/notification.ts';

/*
 * The body of each FCM message is built from its notification's text serialised once and
 * the device's token: it must be byte for byte what serialising the whole message gives.
 */

function notification(overrides: Partial<Notification> = {}): Notification {
  return {
    id: crypto.randomUUID(),
    userId: 'u1',
    seq: 3,
    type: 'message',
    conversationId: 'conversation-1',
    senderId: 'alice',
    title: '3 messages from Alice "and" Bob',
    body: 'ünïcode ✓',
    badge: 3,
    silent: false,
    data: { push: { room_id: '!room:example.org' } },
    createdAt: Date.now(),
    ...overrides,
  };
}

const whole = (n: Notification, token: string, now: number) => JSON.stringify({ message: fcmMessage(n, token, now) });

describe('FCM message bodies', () => {
  it('an alert, a silent push and a clean push read as the whole message serialised, for every device', () => {
    const bodies = new FcmBodies();
    const now = Date.now();
    for (const n of [notification(), notification({ silent: true }), notification({ type: 'clean', conversationId: null })]) {
      for (const token of ['fA1:APA91bXYZ', 'token "with" quotes\\', '']) {
        expect(bodies.body(n, token, now)).toBe(whole(n, token, now));
      }
    }
  });

  it("a notification's TTL counts down in its later bodies, as in a message built whole", () => {
    const bodies = new FcmBodies();
    const n = notification();
    const now = Date.now();
    const first = bodies.body(n, 'device-1', now);
    const later = bodies.body(n, 'device-2', now + 2500);
    expect(JSON.parse(later).message.android.ttl).not.toBe(JSON.parse(first).message.android.ttl);
    expect(later).toBe(whole(n, 'device-2', now + 2500));
  });
});
