import { randomUUID } from 'node:crypto';

/**
 * The baselines send each client its own frame shaped like Herald's chat-message frame
 * (same fields, same size), so the ceiling and the peer move the same bytes as Herald does.
 */
export class FrameMaker {
  private padding = '';

  constructor(frameBytes: number) {
    const probe = this.make(100, 1000);
    const missing = frameBytes - Buffer.byteLength(probe);
    this.padding = missing > 0 ? 'x'.repeat(missing) : '';
  }

  make(seq: number, recipient: number): string {
    return JSON.stringify({
      type: 'notification',
      seq,
      id: randomUUID(),
      kind: 'message',
      conversationid: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
      sender: '5d41402abc4b2a76b9719d911017c592',
      title: '1 message from Sender in Bench group',
      body: '',
      badge: seq,
      silent: false,
      created: Date.now(),
      data: { messageid: `m-${seq}`, unread: seq, recipient, pad: this.padding },
    });
  }
}

/** Reads a small JSON request body (the baselines' POST /send). */
export function readBody(request: import('node:http').IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}
