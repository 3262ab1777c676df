import type { Store } from '../../src/store/db.ts';
import type { Notifier } from '../../src/notify/notifier.ts';
import { createUser } from '../../src/chat/users.ts';
import { createConversation } from '../../src/chat/conversations.ts';
import { addMessage } from '../../src/chat/messages.ts';

/**
 * `count` one-to-one conversations of fresh users (e-mails at `domain`), and a function that
 * sends message `k` through the real `addMessage` path: pair k mod count, its two users
 * taking turns, each `k` a message ID of its own (negative ones for a warm-up).
 */
export async function oneToOnePairs(
  store: Store,
  notifier: Notifier,
  count: number,
  domain: string,
): Promise<(k: number) => Promise<void>> {
  const pairs: Array<{ a: { id: string; name: string }; b: { id: string; name: string }; conversation: string }> = [];
  for (let i = 0; i < count; i++) {
    const a = await createUser(store.db, store.secrets, { email: `a${i}@${domain}`, name: `A${i}` });
    const b = await createUser(store.db, store.secrets, { email: `b${i}@${domain}`, name: `B${i}` });
    const conversation = await createConversation(notifier, a.userid, { participantIds: [b.userid] });
    pairs.push({ a: { id: a.userid, name: `A${i}` }, b: { id: b.userid, name: `B${i}` }, conversation: conversation.id });
  }
  return async (k: number) => {
    const pair = pairs[((k % count) + count) % count];
    const from = Math.abs(k) % 2 ? pair.a : pair.b;
    const now = new Date().toISOString().slice(0, 19).replace('T', ' ');
    await addMessage(notifier, from, pair.conversation, { ID: `m${k}`, Type: 'Message', Created: now, ValidUntil: now, Data: 'AAAA' });
  };
}
