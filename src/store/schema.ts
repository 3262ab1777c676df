import type { Generated } from 'kysely';

/** The two databases Herald runs on. */
export type Dialect = 'sqlite' | 'postgres';

/**
 * Table types shared by SQLite and PostgreSQL. Times are unix milliseconds (bigint on
 * PostgreSQL, parsed back to number), flags are 0/1 integers so both dialects agree.
 */
export interface UsersTable {
  id: string; // md5 hex of the trimmed, lower-cased e-mail address
  /** A small number of the user's own, given by the database: the feed is keyed by it. */
  key: Generated<number>;
  email: string;
  name: string;
  nick: string;
  /** The lookup hash of the user's API key (SecretBox.lookupHash): logins find the user by it. */
  apikey_hash: string;
  /** The API key sealed with the data key: Ozeki-Signature HMACs are keyed with it. */
  apikey_sealed: string;
  availability: string;
  availability_changed_at: number;
  created_at: number;
}

export interface DevicesTable {
  station: string; // Ozeki-Station: 32 hex characters chosen by the client
  user_id: string;
  platform: string;
  /** The secret that authenticates UDP datagrams (handed out over HTTPS), sealed with the data key. */
  udp_secret_sealed: string | null;
  push_provider: string | null; // 'apns' | 'fcm' | 'webpush'
  push_token: string | null;
  /** Extra push data (Web Push keys) as JSON text. */
  push_keys: string | null;
  push_disabled_at: number | null;
  push_disabled_reason: string | null;
  /** The kinds that alert on this device, as a JSON list; null: every kind alerts. */
  alert_kinds: string | null;
  acked_seq: number;
  delivered_seq: number;
  last_seen_at: number;
  created_at: number;
  /** When the device was last in use (an ack, a frame, `active`); null when idle or closed. */
  active_at: number | null;
  /** The highest sequence the device acknowledged while in use: a push held for it is not needed. */
  seen_seq: number;
}

export interface FriendshipsTable {
  user_id: string;
  friend_id: string;
  created_at: number;
}

export interface BlocksTable {
  user_id: string;
  blocked_user_id: string | null;
  blocked_conversation_id: string | null;
  created_at: number;
}

export interface ConversationsTable {
  id: string;
  is_group: number;
  display_name: string;
  secret: string;
  instance: string;
  created_by: string;
  last_message_id: string;
  last_report_id: string;
  /** When messages or reports were last added. */
  changed_at: number;
  created_at: number;
}

export interface ParticipantsTable {
  conversation_id: string;
  user_id: string;
  is_muted: number;
  is_favorite: number;
  hide_id: string;
  background_color: string;
  unread_count: number;
  last_access_at: number;
  /** When this user's list entry of the conversation last changed. */
  list_changed_at: number;
  /** Messages before this server sequence are cleared for this user. */
  cleared_before_seq: number;
}

export interface MessagesTable {
  seq: Generated<number>;
  conversation_id: string;
  id: string; // the client's message ID
  sender_id: string;
  type: string;
  created: string;
  valid_until: string;
  data: string;
  received_at: number;
}

export interface ReportsTable {
  seq: Generated<number>;
  conversation_id: string;
  id: string;
  user_id: string;
  type: string;
  created: string;
  /** The report fields as the client sent them (JSON text). */
  body: string;
  received_at: number;
}

/**
 * A user's feed. A row is found by its user's key and sequence number; its id is made from
 * the two (see notificationId in src/notify/model.ts).
 */
/** The unread count of a thread another backend sends into through the gateway API. */
export interface ThreadUnreadTable {
  user_id: string;
  /** The sender's conversation id; '' for notifications without one. */
  thread_id: string;
  unread: number;
}

/** The answer to a gateway call made with an `Idempotency-Key`, kept for at least a day. */
export interface IdempotencyKeysTable {
  /** Who made the call: `admin` or a token's id. */
  caller: string;
  key: string;
  /** SHA-256 of the request body: the same key with another body is refused. */
  request_hash: string;
  /** Where each recipient's notification went, JSON [[user key, seq] or 0, …] in the request's order; null while being written. */
  answer: string | null;
  created_at: number;
}

/** Where a user's feed rows are: those from `first_seq` up to the next entry's are in `epoch`. */
export interface FeedEpochsTable {
  user_key: number;
  first_seq: number;
  epoch: number;
}

export interface NotificationsTable {
  /**
   * Which stretch of the feed's writes the row belongs to (EPOCH_ROWS rows each; on PostgreSQL
   * by the clock the nodes share, migration 0018): the index is (epoch, user_key, seq), so a
   * commit's recipients share pages.
   */
  epoch: Generated<number>;
  /** `users.key` of the recipient. */
  user_key: number;
  seq: number;
  type: string;
  conversation_id: string | null;
  sender_id: string | null;
  title: string;
  body: string;
  badge: number;
  silent: number;
  /** Type-specific fields as JSON text. */
  data: string;
  /** Web3MQ read status: null, 'delivered' or 'read'. */
  status: string | null;
  status_at: number | null;
  created_at: number;
  /** The sender's push options (time to live, priority) as JSON text; null for the defaults. */
  push_options: string | null;
}

export interface DeliveriesTable {
  id: Generated<number>;
  notification_id: string;
  user_id: string;
  station: string;
  provider: string;
  state: string; // 'pending' | 'held' | 'delivered' | 'dead' | 'failed' | 'expired' | 'cancelled'
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  lease_owner: string | null;
  expires_at: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

/** Web3MQ: a user's main ed25519 key and the decentralised id it was registered with. */
export interface Web3mqAccountsTable {
  user_id: string;
  did_type: string;
  did_value: string;
  /** Lowercase hex of the raw 32-byte ed25519 public key. */
  main_pubkey: string;
  pubkey_type: string;
  created_at: number;
}

/** Web3MQ: temporary keys installed by a login, each valid until `expires_at`. */
export interface Web3mqLoginKeysTable {
  pubkey: string;
  user_id: string;
  expires_at: number;
  created_at: number;
}

export interface Web3mqFriendRequestsTable {
  requester_id: string;
  target_id: string;
  content: string;
  created_at: number;
}

export interface Web3mqGroupMembersTable {
  group_id: string;
  user_id: string;
  invited_by: string | null;
  created_at: number;
}

export interface Web3mqTopicsTable {
  id: string;
  owner_id: string;
  name: string;
  created_at: number;
}

export interface Web3mqSubscriptionsTable {
  topic_id: string;
  user_id: string;
  created_at: number;
}

/** A scoped token of the native API; the token itself is never stored, only its SHA-256. */
export interface ApiTokensTable {
  id: string;
  name: string;
  /** Lowercase hex SHA-256 of the whole token text (`hrld_…`). */
  token_hash: string;
  /** The granted scopes, separated by single spaces. */
  scopes: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  /** Written at most once a minute per token, so a busy caller does not write on every call. */
  last_used_at: number | null;
}

/** Do-not-disturb and quiet hours of a user who set either. */
export interface UserPreferencesTable {
  user_id: string;
  dnd_until: number | null;
  /** `HH:MM` in the user's zone; the end may be earlier than the start (past midnight). */
  quiet_start: string | null;
  quiet_end: string | null;
  /** An IANA time zone, as Intl names it. */
  quiet_zone: string | null;
  /** The days a quiet period starts on: `mon,tue,…`. */
  quiet_days: string | null;
  updated_at: number;
}

/** A conversation (or gateway thread) a user muted until a time. */
export interface ConversationMutesTable {
  user_id: string;
  conversation_id: string;
  until: number;
}

export interface Database {
  users: UsersTable;
  devices: DevicesTable;
  friendships: FriendshipsTable;
  blocks: BlocksTable;
  conversations: ConversationsTable;
  participants: ParticipantsTable;
  messages: MessagesTable;
  reports: ReportsTable;
  notifications: NotificationsTable;
  feed_epochs: FeedEpochsTable;
  thread_unread: ThreadUnreadTable;
  idempotency_keys: IdempotencyKeysTable;
  deliveries: DeliveriesTable;
  web3mq_accounts: Web3mqAccountsTable;
  web3mq_login_keys: Web3mqLoginKeysTable;
  web3mq_friend_requests: Web3mqFriendRequestsTable;
  web3mq_group_members: Web3mqGroupMembersTable;
  web3mq_topics: Web3mqTopicsTable;
  web3mq_subscriptions: Web3mqSubscriptionsTable;
  api_tokens: ApiTokensTable;
  user_preferences: UserPreferencesTable;
  conversation_mutes: ConversationMutesTable;
}
