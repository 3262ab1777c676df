import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { md5Hex, userIdOfEmail } from '../web/shared/md5.ts';
import { userIdOf } from '../src/chat/ids.ts';

describe("the web app's MD5 (the user id of an e-mail, checked at sign-in)", () => {
  it('agrees with Node for lengths around the 64-byte block and its padding, and for UTF-8', () => {
    const texts = [
      '',
      'a',
      'admin@ozeki.hu',
      'x'.repeat(55),
      'x'.repeat(56),
      'x'.repeat(63),
      'x'.repeat(64),
      'x'.repeat(119),
      'Árvíztűrő tükörfúrógép ✉',
    ];
    for (const text of texts) expect(md5Hex(text), JSON.stringify(text)).toBe(createHash('md5').update(text).digest('hex'));
  });

  it('gives the user id the server gives the same address', () => {
    expect(userIdOfEmail('  Alice@Example.ORG ')).toBe(userIdOf('alice@example.org'));
    expect(userIdOfEmail('admin@ozeki.hu')).toBe('d574638619cbff603bf857164c47e850');
  });
});
