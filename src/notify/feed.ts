import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { Notification, NotificationDraft } from '../model/notification.ts';
import { alertsOnPush, isBackgroundPush, isPushedType, notificationId } from '../model/notification.ts';
import { SILENT_PUSH_REFUSED } from '../model/channel.ts';
import { rowToNotification } from '../store/rows.ts';
import type { BulkWriter, FeedHead, LeasedRows, PlannedPushes, PushHold, PushLease } from '../store/bulk.ts';
import type { SilenceReason, Silencer } from './preferences.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** How long a push may wait in the outbox before it is no longer worth sending. */
export const PUSH_TIME_TO_LIVE_MS = 24 * 60 * 60 * 1000;

export interface AppendOptions {
  now?: number;
  /** The database's own writer for the audience-sized statements (Store.bulk). */
  bulk: BulkWriter;
  /** Recipients' do-not-disturb, quiet hours and muted conversations: what may not alert now. */
  silencer?: Silencer;
  /**
   * Told how many outbox rows were written (and how many of them are held), when there were
   * any, and the ids of those written leased to `pushLease`'s owner.
   */
  onPushesQueued?: (count: number, held: number, leased: LeasedRows[]) => void;
  /** The rows due now are written leased to this node's dispatcher (see PushLease); none when unset. */
  pushLease?: PushLease;
  /** Presence-aware hold of alerting pushes; none when unset. */
  pushHold?: PushHoldPolicy;
  /**
   * Where recipients' feeds stand, already read (and held against other writers, as
   * BulkWriter.feedHeads does) by the caller in this transaction; the others are read here.
   */
  heads?: FeedHead[];
}

/** How long alerting pushes wait for a user who is in use, and what counts as in use. */
export interface PushHoldPolicy {
  /** The grace period; 0 turns the hold off. */
  holdMs: number;
  /** A device that showed activity this recently is in use. */
  activeWindowMs: number;
}

/** A recipient's share of a batch, and the sequence numbers and badge it is given. */
interface Claim {
  /** How much the recipient's notifications move their unread total. */
  unread: number;
  /** The next sequence number to hand out; 0 while the recipient is not known to exist. */
  nextSeq: number;
  badge: number;
  key: number;
  /** The epoch of the feed's newest row, as the feed head said (-1: not known). */
  epoch: number;
  /** The badge a draft set outright (the last one wins); `unread` then moves it no further. */
  setBadge?: number;
}

/**
 * Appends notifications to their recipients' feeds inside the caller's transaction: each
 * recipient's notifications take the numbers after their feed's newest row, and all of them
 * carry the badge that row's badge moves to. Push-token devices get their outbox rows in the
 * same transaction, so a committed notification is never without its pushes.
 */
export async function appendNotifications(trx: Db, drafts: NotificationDraft[], options: AppendOptions): Promise<Notification[]> {
  if (drafts.length === 0) return [];
  const now = options.now ?? Date.now();
  const bulk = options.bulk;

  const claims = new Map<string, Claim>();
  for (const draft of drafts) {
    let claim = claims.get(draft.userId);
    if (!claim) {
      claim = { unread: 0, nextSeq: 0, badge: 0, key: 0, epoch: -1 };
      claims.set(draft.userId, claim);
    }
    claim.unread += draft.unread ?? 0;
    if (draft.badge !== undefined) claim.setBadge = draft.badge;
  }
  const heads = options.heads ? await completeHeads(trx, bulk, claims, options.heads) : await bulk.feedHeads(trx, [...claims.keys()]);
  for (const head of heads) {
    const claim = claims.get(head.id)!;
    claim.nextSeq = head.seq + 1;
    claim.badge = claim.setBadge ?? Math.max(0, head.badge + claim.unread);
    claim.key = head.key;
    claim.epoch = head.epoch ?? -1;
  }

  const notifications: Notification[] = [];
  const keys: number[] = [];
  const epochs: number[] = [];
  const silencer = options.silencer;
  let silenced: Map<SilenceReason, number> | undefined;
  for (const draft of drafts) {
    const claim = claims.get(draft.userId)!;
    if (claim.nextSeq === 0) continue; // given nothing: the recipient no longer exists
    const seq = claim.nextSeq++;
    keys.push(claim.key);
    epochs.push(claim.epoch);
    let silent = draft.silent ?? false;
    if (!silent && silencer !== undefined && draft.type !== 'clean') {
      const reason = silencer.silences(draft.userId, draft.conversationId, now);
      if (reason !== undefined) {
        silent = true;
        (silenced ??= new Map()).set(reason, (silenced.get(reason) ?? 0) + 1);
      }
    }
    notifications.push({
      id: notificationId(claim.key, seq),
      userId: draft.userId,
      seq,
      type: draft.type,
      conversationId: draft.conversationId ?? null,
      senderId: draft.senderId ?? null,
      title: draft.title,
      body: draft.body ?? '',
      badge: claim.badge,
      silent,
      data: draft.data ?? {},
      createdAt: now,
      ...(draft.push && { push: draft.push }),
    });
  }

  if (silenced) for (const [reason, count] of silenced) silencer!.counted?.(reason, count);
  const plan = planPushes(notifications, now, options.pushHold, options.pushLease);
  let pushes: { queued: number; held: number; leased?: LeasedRows[] };
  if (bulk.insertWithPushes) {
    // PostgreSQL's: its rows are claimed (one statement writes the feed and the outbox).
    const { queued, held } = await bulk.insertWithPushes(trx, notifications, keys, plan, epochs);
    pushes = { queued, held };
  } else {
    await bulk.insertNotifications(trx, notifications, keys, epochs);
    pushes = await enqueuePushes(trx, bulk, plan);
  }
  if (pushes.queued > 0) options.onPushesQueued?.(pushes.queued, pushes.held, pushes.leased ?? []);
  return notifications;
}

/** The heads the caller read that belong to these claims, and the others read now. */
async function completeHeads(trx: Db, bulk: BulkWriter, claims: Map<string, Claim>, given: FeedHead[]): Promise<FeedHead[]> {
  const heads = given.filter((head) => claims.has(head.id));
  if (heads.length === claims.size) return heads;
  const known = new Set(heads.map((head) => head.id));
  return [
    ...heads,
    ...(await bulk.feedHeads(
      trx,
      [...claims.keys()].filter((id) => !known.has(id)),
    )),
  ];
}

/** Which notifications are pushed, until when, which of them wait while their user is in use, and the lease of those due now. */
function planPushes(
  notifications: Notification[],
  now: number,
  policy: PushHoldPolicy | undefined,
  lease: PushLease | undefined,
): PlannedPushes {
  const hold: PushHold | undefined =
    policy && policy.holdMs > 0 ? { activeAfter: now - policy.activeWindowMs, until: now + policy.holdMs } : undefined;
  const plan: PlannedPushes = {
    now,
    hold,
    notifications: [],
    expiresAt: [],
    holdable: [],
    background: [],
    backgroundRefusedBy: SILENT_PUSH_REFUSED,
    lease,
  };
  for (const n of notifications) {
    if (!isPushedType(n.type)) continue;
    // A time to live of the sender's own, or the default.
    const expiresAt = n.push?.ttl === undefined ? now + PUSH_TIME_TO_LIVE_MS : now + n.push.ttl * 1000;
    const background = isBackgroundPush(n);
    plan.notifications.push(n);
    plan.expiresAt.push(expiresAt);
    plan.background.push(background);
    // A push that would expire before its hold ends is not held; a background push never is.
    plan.holdable.push(hold !== undefined && !background && hold.until < expiresAt && alertsOnPush(n));
  }
  return plan;
}

/** One outbox row per push-token device of each recipient, one statement per group; says how many it wrote and held. */
async function enqueuePushes(
  trx: Db,
  bulk: BulkWriter,
  plan: PlannedPushes,
): Promise<{ queued: number; held: number; leased: LeasedRows[] }> {
  if (plan.notifications.length === 0) return { queued: 0, held: 0, leased: [] };
  // The drafts of one call share a time to live, so this is one group; background pushes are
  // a group of their own: they skip the providers that must show every push.
  const groups = new Map<number, { expiresAt: number; background: boolean; holds: boolean; notifications: Notification[] }>();
  plan.notifications.forEach((n, i) => {
    const expiresAt = plan.expiresAt[i];
    const background = plan.background[i];
    // A number, not a string, per recipient: milliseconds × 2 stay well inside 2^53.
    const key = expiresAt * 2 + (background ? 1 : 0);
    const group = groups.get(key);
    if (group) group.notifications.push(n);
    else
      groups.set(key, {
        expiresAt,
        background,
        holds: plan.hold !== undefined && !background && plan.hold.until < expiresAt,
        notifications: [n],
      });
  });
  const total = { queued: 0, held: 0, leased: [] as LeasedRows[] };
  for (const { expiresAt, background, holds, notifications: group } of groups.values()) {
    const { queued, held, leased } = background
      ? await bulk.queuePushes(trx, group, plan.now, expiresAt, undefined, plan.backgroundRefusedBy, plan.lease)
      : await bulk.queuePushes(trx, group, plan.now, expiresAt, holds ? plan.hold : undefined, undefined, plan.lease);
    total.queued += queued;
    total.held += held;
    if (leased) total.leased.push(leased);
  }
  return total;
}

/** Where a user's feed stands: its last sequence number and the badge (0 and 0 while it is empty). */
export async function feedHead(db: Db, userId: string): Promise<{ lastSeq: number; badge: number }> {
  const key = userKeyOf(userId);
  const head = await db
    .selectFrom('notifications')
    .select(['seq', 'badge'])
    .where(sql<boolean>`epoch = ${headEpoch(key)}`)
    .where('user_key', '=', key)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return { lastSeq: head?.seq ?? 0, badge: head?.badge ?? 0 };
}

/** A user's notifications after `afterSeq`, oldest first: what a resuming device missed. */
export async function readFeed(db: Db, userId: string, afterSeq: number, limit = 1000): Promise<Notification[]> {
  const key = userKeyOf(userId);
  const rows = await db
    .selectFrom('notifications')
    .selectAll()
    .where(feedEpochsAfter(key, afterSeq))
    .where('user_key', '=', key)
    .where('seq', '>', afterSeq)
    .orderBy('seq', 'asc')
    .limit(limit)
    .execute();
  return rows.map((row) => rowToNotification(row, userId));
}

/** Where each of these users' feeds stands (users that no longer exist are left out). */
export async function feedHeads(db: Db, userIds: readonly string[]): Promise<Map<string, number>> {
  const heads = new Map<string, number>();
  if (userIds.length === 0) return heads;
  // The newest row of each feed is one step down its index, on SQLite and PostgreSQL alike.
  const rows = await db
    .selectFrom('users')
    .select([
      'id',
      sql<number>`coalesce((SELECT max(seq) FROM notifications WHERE epoch = ${headEpoch(sql.ref('users.key'))} AND user_key = users.key), 0)`.as(
        'seq',
      ),
    ])
    .where('id', 'in', userIds)
    .execute();
  for (const row of rows) heads.set(row.id, Number(row.seq));
  return heads;
}

/**
 * The epoch of a user's newest feed row, as a subquery: the feed's index is (epoch, user_key,
 * seq), and feed_epochs says from which seq on a user's rows are in which epoch.
 */
export function headEpoch(userKey: RawBuilder<number> | ReturnType<typeof sql.ref>) {
  return sql<number>`(SELECT epoch FROM feed_epochs WHERE user_key = ${userKey} ORDER BY first_seq DESC LIMIT 1)`;
}

/** A condition: the row is in an epoch that holds a user's rows after `afterSeq` (each one index seek). */
export function feedEpochsAfter(userKey: RawBuilder<number>, afterSeq: number) {
  return sql<boolean>`epoch IN (SELECT epoch FROM feed_epochs WHERE user_key = ${userKey} AND first_seq >= coalesce(
    (SELECT max(first_seq) FROM feed_epochs WHERE user_key = ${userKey} AND first_seq <= ${afterSeq + 1}), 0))`;
}

/** The user key of a user, as a subquery (the feed is keyed by it). */
export function userKeyOf(userId: string) {
  return sql<number>`(SELECT key FROM users WHERE id = ${userId})`;
}

/** What the live channels read of a user's feed: where it stands, and what a device missed. */
export interface FeedReader {
  head(userId: string): Promise<{ lastSeq: number; badge: number }>;
  /** The last sequence number of each of these users' feeds. */
  heads(userIds: readonly string[]): Promise<Map<string, number>>;
  /** Notifications after `afterSeq`, oldest first, at most `limit`. */
  read(userId: string, afterSeq: number, limit: number): Promise<Notification[]>;
}

export function feedReader(db: Kysely<Database>): FeedReader {
  return {
    head: (userId) => feedHead(db, userId),
    heads: (userIds) => feedHeads(db, userIds),
    read: (userId, afterSeq, limit) => readFeed(db, userId, afterSeq, limit),
  };
}
