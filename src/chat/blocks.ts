import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';
import { dialectOf } from '../store/statement.ts';
import { badRequest, conflict, notFound } from '../errors.ts';
import { requireParticipant } from './conversations.ts';

type Db = Kysely<Database>;

/** Entries (users and conversations together) one user's blocklist may hold. */
export const MAX_BLOCKLIST_ENTRIES = 10_000;

export async function blocklist(db: Db, userId: string) {
  const rows = await db.selectFrom('blocks').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  return {
    blockedusers: rows.filter((r) => r.blocked_user_id).map((r) => r.blocked_user_id!),
    blockedconversations: rows.filter((r) => r.blocked_conversation_id).map((r) => r.blocked_conversation_id!),
  };
}

export interface BlockTarget {
  userId?: string;
  conversationId?: string;
}

export async function block(db: Db, userId: string, target: BlockTarget): Promise<void> {
  if (target.userId) {
    if (target.userId === userId) throw badRequest('you cannot block yourself');
    const user = await db.selectFrom('users').select('id').where('id', '=', target.userId).executeTakeFirst();
    if (!user) throw notFound(`no such user: ${target.userId}`);
  } else {
    // Only a participant has anything to block in a conversation: 404 unknown, 403 not in it.
    await requireParticipant(db, target.conversationId ?? '', userId);
  }
  await db.transaction().execute(async (trx) => {
    // Two blocks at once must not both pass the count: PostgreSQL takes them in turn on the
    // user's row; SQLite has one writer.
    if (dialectOf(trx) === 'postgres') await sql`SELECT id FROM users WHERE id = ${userId} FOR UPDATE`.execute(trx);
    await unblockIn(trx, userId, target);
    const { n } = await trx
      .selectFrom('blocks')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow();
    if (Number(n) >= MAX_BLOCKLIST_ENTRIES) {
      throw conflict(`the blocklist is full (${MAX_BLOCKLIST_ENTRIES} entries): unblock someone first`);
    }
    await trx
      .insertInto('blocks')
      .values({
        user_id: userId,
        blocked_user_id: target.userId ?? null,
        blocked_conversation_id: target.conversationId ?? null,
        created_at: Date.now(),
      })
      .execute();
  });
}

export async function unblock(db: Db, userId: string, target: BlockTarget): Promise<void> {
  await unblockIn(db, userId, target);
}

async function unblockIn(db: Db | Transaction<Database>, userId: string, target: BlockTarget) {
  let query = db.deleteFrom('blocks').where('user_id', '=', userId);
  query = target.userId
    ? query.where('blocked_user_id', '=', target.userId)
    : query.where('blocked_conversation_id', '=', target.conversationId ?? '');
  await query.execute();
}
