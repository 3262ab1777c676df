/** What the APNs double (test/mocks/apns-server.ts) prints when it starts. */
export interface DoubleInfo {
  url: string;
  port: number;
  caFile: string;
  keyFile: string;
  keyId: string;
  teamId: string;
  topic: string;
}

/** A payload the size and shape of Herald's chat-message push (its own badge each). */
export function pushPayload(badge: number): string {
  return JSON.stringify({
    aps: {
      badge,
      alert: { title: '1 message from Bench 0 in Bench push group', body: '' },
      sound: 'default',
      'thread-id': '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    },
    herald: {
      id: '8a6e0804-2bd0-4672-b79d-d97027f9071b',
      seq: badge,
      type: 'message',
      conversationid: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
      sender: '5d41402abc4b2a76b9719d911017c592',
    },
  });
}

/** Device tokens for the baselines: 64 hex characters, all distinct. */
export function deviceTokens(count: number, salt: string): string[] {
  return Array.from({ length: count }, (_, i) => {
    const head = Buffer.from(`${salt}:${i}`).toString('hex').slice(0, 40);
    return (head + i.toString(16).padStart(24, '0')).padEnd(64, 'a').slice(0, 64);
  });
}
