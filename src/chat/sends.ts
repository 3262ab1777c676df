import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { Emit, Notifier } from '../notify/notifier.ts';
import { feedEpochsAfter, feedHead, readFeed, userKeyOf } from '../notify/feed.ts';
import {
  notificationId,
  userKeyOfId,
  type CustomKind,
  type Notification,
  type NotificationDraft,
  type PushOptions,
} from '../model/notification.ts';
import { badRequest, HeraldError } from '../errors.ts';
import { dialectOf, listParameter, Statement } from '../store/statement.ts';
import { userIdNamed } from './ids.ts';

/*
 * Notifications born in another backend (the gateway API, `POST /v1/notifications`): they
 * go through the same feed, badge, outbox and channels as chat messages. A sender's
 * `conversationid` is a thread of its own: Herald counts its unread notifications per
 * recipient, so reading the thread takes exactly those off the badge.
 */

export const MAX_RECIPIENTS = 10_000;
/** Rows per statement when the thread counters of a large audience move. */
const CHUNK = 500;
/** Answers to `Idempotency-Key` calls are kept this long at least (and pruned a little later). */
export const IDEMPOTENCY_KEEP_MS = 24 * 60 * 60 * 1000;

export interface GatewaySend {
  /** User ids or e-mail addresses, as the sender gave them. */
  to: string[];
  title: string;
  body?: string;
  data?: Record<string, unknown>;
  /** `message` (the default) or a namespaced kind of the sender's (`app.invoice`). */
  kind?: 'message' | CustomKind;
  conversationId?: string;
  silent?: boolean;
  /** `increment` (the default) counts the notification as unread, `keep` does not, a number sets the badge. */
  badge?: 'increment' | 'keep' | number;
  push?: PushOptions;
}

export interface SentTo {
  /** The recipient as the sender named them. */
  to: string;
  userid: string;
  id: string;
  seq: number;
}

export interface SendAnswer {
  notifications: SentTo[];
  /** Recipients Herald does not know, as the sender named them; nothing was sent to them. */
  unknown: string[];
}

/** Who made a call with an `Idempotency-Key`, the key, and the digest of the request it came with. */
export interface IdempotentCall {
  caller: string;
  key: string;
  requestHash: string;
}

/**
 * Sends one notification to each recipient. With an idempotency key the answer is written
 * in the same transaction as the notifications, so a retried call (even one racing the
 * first on another node) returns the first answer and creates nothing.
 */
export async function sendNotifications(
  notifier: Notifier,
  send: GatewaySend,
  idempotent?: IdempotentCall,
): Promise<{ answer: SendAnswer; replayed: boolean }> {
  // The recipients as the sender named them, each user once: a retried call names them alike.
  const named = new Map<string, string>();
  for (const to of send.to) {
    const id = userIdNamed(to);
    if (!named.has(id)) named.set(id, to);
  }
  return notifier.transact(async (trx, emit) => {
    const now = Date.now();
    if (idempotent) {
      const earlier = await claimKey(trx, idempotent, now);
      if (earlier) return { answer: answerOf(named, earlier), replayed: true };
    }

    const badge = send.badge ?? 'increment';
    const unread = badge === 'increment' ? 1 : 0;
    const setBadge = typeof badge === 'number' ? badge : undefined;
    const type = send.kind ?? 'message';
    const conversationId = send.conversationId ?? null;
    const body = send.body ?? '';
    const silent = send.silent ?? false;
    const data = send.data ?? {};
    // Written out in full: a group send makes thousands of these.
    const drafts: NotificationDraft[] = [];
    for (const userId of named.keys()) {
      drafts.push({ userId, type, conversationId, title: send.title, body, silent, data, unread, badge: setBadge, push: send.push });
    }
    const produced = await emit(drafts, { now });
    if (unread > 0) await countUnread(trx, produced, send.conversationId ?? '');

    const answer: SendAnswer = { notifications: [], unknown: [] };
    const reached = new Set<string>();
    for (const n of produced) {
      reached.add(n.userId);
      answer.notifications.push({ to: named.get(n.userId)!, userid: n.userId, id: n.id, seq: n.seq });
    }
    for (const [userId, to] of named) if (!reached.has(userId)) answer.unknown.push(to);
    if (idempotent) {
      await trx
        .updateTable('idempotency_keys')
        .set({ answer: JSON.stringify(placesOf(named, produced)) })
        .where('caller', '=', idempotent.caller)
        .where('key', '=', idempotent.key)
        .execute();
    }
    return { answer, replayed: false };
  }, threadKey(send.conversationId));
}

/**
 * The notifier's key of a send to a thread (see Notifier.transact). Sends to one thread go
 * to the same recipients, as a conversation's messages do: keyed, those queued together
 * share a SQLite transaction and each recipient's frames leave in one write, where unkeyed
 * each took a transaction of its own once the first passed 1 ms of work (a 2,000-recipient
 * send takes ~10). On PostgreSQL they then never run side by side, so two sends do not wait
 * for each other's locks on the thread's counters. Prefixed: a thread is not a conversation.
 */
function threadKey(threadId: string | undefined): string | undefined {
  return threadId === undefined ? undefined : `thread:${threadId}`;
}

/** Where a recipient's notification went in their feed: [user key, seq]; 0 for an unknown recipient. */
type Place = [userKey: number, seq: number];
type Reached = Array<Place | 0>;

/** Where each named recipient's notification went, in the request's order. */
function placesOf(named: Map<string, string>, produced: Notification[]): Reached {
  const places = new Map<string, Place>();
  for (const n of produced) places.set(n.userId, [userKeyOfId(n.id), n.seq]);
  return [...named.keys()].map((userId) => places.get(userId) ?? 0);
}

/**
 * The answer of a retried call from its recipients and where each notification went. Only the places
 * are kept for a retry (a few bytes a recipient, not the answer's hundred): the retry's
 * recipients are the first call's, since its body is the same.
 */
function answerOf(named: Map<string, string>, reached: Reached): SendAnswer {
  const answer: SendAnswer = { notifications: [], unknown: [] };
  let i = 0;
  for (const [userid, to] of named) {
    const place = reached[i++];
    if (place === 0 || place === undefined) answer.unknown.push(to);
    else answer.notifications.push({ to, userid, id: notificationId(place[0], place[1]), seq: place[1] });
  }
  return answer;
}

/**
 * Takes the key for this call, or gives the answer of the call that took it first. On
 * PostgreSQL a concurrent first call holds the key's row until it commits, so the insert
 * waits for it and then sees its answer.
 */
async function claimKey(trx: Transaction<Database>, call: IdempotentCall, now: number): Promise<Reached | undefined> {
  // Old answers go a little at a time, by the calls that make new ones.
  await trx
    .deleteFrom('idempotency_keys')
    .where('created_at', '<', now - 2 * IDEMPOTENCY_KEEP_MS)
    .where(({ eb, selectFrom }) =>
      eb(
        'key',
        'in',
        selectFrom('idempotency_keys')
          .select('key')
          .where('created_at', '<', now - 2 * IDEMPOTENCY_KEEP_MS)
          .limit(100),
      ),
    )
    .execute();
  const taken = await trx
    .insertInto('idempotency_keys')
    .values({ caller: call.caller, key: call.key, request_hash: call.requestHash, answer: null, created_at: now })
    .onConflict((oc) => oc.columns(['caller', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst();
  if (taken) return undefined;
  const earlier = await trx
    .selectFrom('idempotency_keys')
    .select(['request_hash', 'answer'])
    .where('caller', '=', call.caller)
    .where('key', '=', call.key)
    .executeTakeFirstOrThrow();
  if (earlier.request_hash !== call.requestHash) {
    throw new HeraldError(422, 'this Idempotency-Key was used with another request; use a new key for a new request');
  }
  if (earlier.answer === null) throw new HeraldError(409, 'a call with this Idempotency-Key is still in progress; retry shortly');
  return JSON.parse(earlier.answer) as Reached;
}

/**
 * One more unread notification in the thread for each recipient: one statement whatever the
 * audience, the recipients as one list parameter (SQLite needs the WHERE to read the upsert).
 */
const COUNT_UNREAD = new Statement({
  sqlite: `INSERT INTO thread_unread (user_id, thread_id, unread) SELECT value, ?, 1 FROM json_each(?) WHERE true
           ON CONFLICT (user_id, thread_id) DO UPDATE SET unread = thread_unread.unread + 1`,
  postgres: `INSERT INTO thread_unread (user_id, thread_id, unread) SELECT unnest(?::varchar[]), ?, 1
             ON CONFLICT (user_id, thread_id) DO UPDATE SET unread = thread_unread.unread + 1`,
});

async function countUnread(trx: Transaction<Database>, produced: Notification[], threadId: string): Promise<void> {
  const users = listParameter(
    trx,
    produced.map((n) => n.userId),
  );
  // The parameters' order differs with the statements' (SQLite's thread first).
  await COUNT_UNREAD.all(trx, dialectOf(trx) === 'sqlite' ? [threadId, users] : [users, threadId]);
}

export interface FeedPage {
  notifications: Notification[];
  /** The `after` of the next page; null when this page reached the newest notification. */
  next: number | null;
  /** The newest sequence number of the feed and the badge it stands at. */
  head: { seq: number; badge: number };
}

/** A page of a user's feed, oldest first, after `after`. */
export async function feedPage(db: Kysely<Database>, userId: string, after: number, limit: number): Promise<FeedPage> {
  const [notifications, head] = await Promise.all([readFeed(db, userId, after, limit), feedHead(db, userId)]);
  const last = notifications.at(-1)?.seq;
  return {
    notifications,
    next: last !== undefined && last < head.lastSeq ? last : null,
    head: { seq: head.lastSeq, badge: head.badge },
  };
}

/** What the user has read: everything up to a sequence number, or one conversation. */
export type ReadMark = { upto: number } | { conversationId: string };

export interface ReadAnswer {
  /** The badge after reading. */
  badge: number;
  /** How many unread notifications reading took off the badge. */
  read: number;
  /** The clean notification that told the user's devices; null when nothing was unread. */
  seq: number | null;
}

/** Types that never count as unread, so they do not keep a conversation unread after `upto`. */
const UNCOUNTED = ['clean', 'availability', 'conversationlist'];

/**
 * Marks notifications read and, when that changed the badge, sends the clean notification
 * with the new badge to all of the user's devices. `{ conversationId }` reads one
 * conversation (one of Herald's, or a thread of the gateway's); `{ upto }` reads every
 * conversation whose newest unread notification is at or before that sequence number.
 */
export async function markRead(notifier: Notifier, userId: string, mark: ReadMark): Promise<ReadAnswer> {
  return notifier.transact(async (trx, emit) => {
    const now = Date.now();
    const head = await feedHead(trx, userId);
    if ('upto' in mark && mark.upto > head.lastSeq) {
      throw badRequest(`upto: ${mark.upto} is past the newest notification of the feed (${head.lastSeq})`);
    }
    const unread = 'upto' in mark ? await unreadUpTo(trx, userId, mark.upto) : await unreadIn(trx, userId, mark.conversationId);
    const total = unread.threads.reduce((sum, t) => sum + t.unread, 0) + unread.conversations.reduce((sum, c) => sum + c.unread, 0);
    if (total === 0) return { badge: head.badge, read: 0, seq: null };
    await zero(trx, userId, unread, now);
    const [clean] = await tellRead(emit, userId, total, mark, now);
    return { badge: clean?.badge ?? head.badge, read: total, seq: clean?.seq ?? null };
  });
}

interface Unread {
  threads: Array<{ id: string; unread: number }>;
  conversations: Array<{ id: string; unread: number }>;
}

async function unreadIn(trx: Transaction<Database>, userId: string, conversationId: string): Promise<Unread> {
  const [threads, conversations] = await Promise.all([
    trx
      .selectFrom('thread_unread')
      .select(['thread_id as id', 'unread'])
      .where('user_id', '=', userId)
      .where('thread_id', '=', conversationId)
      .where('unread', '>', 0)
      .execute(),
    trx
      .selectFrom('participants')
      .select(['conversation_id as id', 'unread_count as unread'])
      .where('user_id', '=', userId)
      .where('conversation_id', '=', conversationId)
      .where('unread_count', '>', 0)
      .execute(),
  ]);
  return { threads, conversations };
}

async function unreadUpTo(trx: Transaction<Database>, userId: string, upto: number): Promise<Unread> {
  const [threads, conversations, later] = await Promise.all([
    trx.selectFrom('thread_unread').select(['thread_id as id', 'unread']).where('user_id', '=', userId).where('unread', '>', 0).execute(),
    trx
      .selectFrom('participants')
      .select(['conversation_id as id', 'unread_count as unread'])
      .where('user_id', '=', userId)
      .where('unread_count', '>', 0)
      .execute(),
    // Conversations with something newer than `upto` stay unread: only the user's feed past it is read.
    trx
      .selectFrom('notifications')
      .select('conversation_id')
      .distinct()
      .where(feedEpochsAfter(userKeyOf(userId), upto))
      .where('user_key', '=', userKeyOf(userId))
      .where('seq', '>', upto)
      .where('type', 'not in', UNCOUNTED)
      .execute(),
  ]);
  const newer = new Set(later.map((row) => row.conversation_id ?? ''));
  return {
    threads: threads.filter((t) => !newer.has(t.id)),
    conversations: conversations.filter((c) => !newer.has(c.id)),
  };
}

async function zero(trx: Transaction<Database>, userId: string, unread: Unread, now: number): Promise<void> {
  const threads = unread.threads.map((t) => t.id);
  const conversations = unread.conversations.map((c) => c.id);
  for (let i = 0; i < threads.length; i += CHUNK) {
    await trx
      .updateTable('thread_unread')
      .set({ unread: 0 })
      .where('user_id', '=', userId)
      .where('thread_id', 'in', threads.slice(i, i + CHUNK))
      .execute();
  }
  for (let i = 0; i < conversations.length; i += CHUNK) {
    await trx
      .updateTable('participants')
      .set({ unread_count: 0, last_access_at: now })
      .where('user_id', '=', userId)
      .where('conversation_id', 'in', conversations.slice(i, i + CHUNK))
      .execute();
  }
}

function tellRead(emit: Emit, userId: string, total: number, mark: ReadMark, now: number) {
  const conversationId = 'conversationId' in mark ? mark.conversationId : null;
  const data = 'upto' in mark ? { read: total, upto: mark.upto } : { read: total };
  return emit([{ userId, type: 'clean', conversationId, title: 'Read', silent: true, data, unread: -total }], { now });
}
