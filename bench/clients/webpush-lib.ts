/**
 * The peer for Web Push: the `web-push` package's sendNotification, as an application
 * server calls it (VAPID details per call, its default agent, which keeps connections alive
 * on Node 20), one push per subscription with the payload of Herald's chat-message push,
 * at most `streams` in flight. The double's certificate is trusted through NODE_EXTRA_CA_CERTS.
 */
import webPush from 'web-push';
import { serveParent, wallNow } from '../lib/ipc.ts';

export interface Subscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** The JSON Herald's service worker receives for one chat message (its own badge each). */
export function webPushBody(badge: number): string {
  return JSON.stringify({
    type: 'message',
    title: '1 message from Bench 0 in Bench push group',
    body: '',
    badge,
    conversationid: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    seq: badge,
    id: '8a6e0804-2bd0-4672-b79d-d97027f9071b',
    sender: '5d41402abc4b2a76b9719d911017c592',
  });
}

const vapid = webPush.generateVAPIDKeys();

serveParent({
  async run({ subscriptions, streams, timeoutMs }: { subscriptions: Subscription[]; streams: number; timeoutMs: number }) {
    const deadline = Date.now() + timeoutMs;
    let next = 0;
    let delivered = 0;
    let failed = 0;
    let lastError = '';
    const options = {
      vapidDetails: { subject: 'mailto:bench@herald.example', publicKey: vapid.publicKey, privateKey: vapid.privateKey },
      TTL: 86_400,
      urgency: 'high' as const,
      topic: 'DxbtPEtaaXiHlqW0w9Lh8A8eLTxLWmlz',
    };
    const t0 = wallNow();
    await Promise.all(
      Array.from({ length: Math.min(streams, subscriptions.length) }, async () => {
        while (next < subscriptions.length && Date.now() < deadline) {
          const i = next++;
          try {
            const answer = await webPush.sendNotification(subscriptions[i], webPushBody(i + 1), options);
            if (answer.statusCode === 201) delivered++;
            else {
              failed++;
              lastError = `${answer.statusCode} ${answer.body}`;
            }
          } catch (error) {
            failed++;
            lastError = (error as Error).message;
          }
        }
      }),
    );
    return { t0, tEnd: wallNow(), delivered, failed, lastError };
  },
  cpu() {
    const { user, system } = process.cpuUsage();
    return user + system;
  },
});
