import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { badRequest, notFound } from '../errors.ts';

type Db = Kysely<Database>;

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
  }
  await db.transaction().execute(async (trx) => {
    await unblockIn(trx, userId, target);
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

async function unblockIn(db: Db | import('kysely').Transaction<Database>, userId: string, target: BlockTarget) {
  let query = db.deleteFrom('blocks').where('user_id', '=', userId);
  query = target.userId
    ? query.where('blocked_user_id', '=', target.userId)
    : query.where('blocked_conversation_id', '=', target.conversationId ?? '');
  await query.execute();
}
