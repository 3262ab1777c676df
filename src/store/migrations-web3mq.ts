import type { Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

/**
 * The Web3MQ tables. A Web3MQ user is an ordinary row of `users` (its id is the Web3MQ
 * userid), so its notifications, friends and devices are Herald's own; these tables add
 * only what Web3MQ has beyond that: keys and decentralised ids, friend requests, groups
 * and topics.
 */
export const web3mqMigration: HeraldMigration = ({ time }) => ({
  async up(db: Kysely<any>) {
    // One account per user: the main ed25519 key and the decentralised id it was registered with.
    await db.schema
      .createTable('web3mq_accounts')
      .addColumn('user_id', 'varchar(64)', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
      .addColumn('did_type', 'varchar(32)', (c) => c.notNull())
      .addColumn('did_value', 'varchar(200)', (c) => c.notNull())
      .addColumn('main_pubkey', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('pubkey_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .addUniqueConstraint('web3mq_accounts_did', ['did_type', 'did_value'])
      .execute();

    // Temporary login keys: each signs the user's calls until it expires.
    await db.schema
      .createTable('web3mq_login_keys')
      .addColumn('pubkey', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('expires_at', time, (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('web3mq_login_keys_user').on('web3mq_login_keys').column('user_id').execute();

    await db.schema
      .createTable('web3mq_friend_requests')
      .addColumn('requester_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('target_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('content', 'varchar(1000)', (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .addPrimaryKeyConstraint('web3mq_friend_requests_pk', ['requester_id', 'target_id'])
      .execute();

    await db.schema
      .createTable('web3mq_group_members')
      .addColumn('group_id', 'varchar(100)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('invited_by', 'varchar(64)')
      .addColumn('created_at', time, (c) => c.notNull())
      .addPrimaryKeyConstraint('web3mq_group_members_pk', ['group_id', 'user_id'])
      .execute();

    await db.schema
      .createTable('web3mq_topics')
      .addColumn('id', 'varchar(100)', (c) => c.primaryKey())
      .addColumn('owner_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('name', 'varchar(200)', (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('web3mq_subscriptions')
      .addColumn('topic_id', 'varchar(100)', (c) => c.notNull().references('web3mq_topics.id').onDelete('cascade'))
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('created_at', time, (c) => c.notNull())
      .addPrimaryKeyConstraint('web3mq_subscriptions_pk', ['topic_id', 'user_id'])
      .execute();
  },
});
