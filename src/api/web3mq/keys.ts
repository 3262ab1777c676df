import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import { HeraldError, badRequest, conflict, forbidden, notFound, unauthorized } from '../../errors.ts';
import { newApiKey } from '../../chat/ids.ts';
import { apiKeyColumns } from '../../chat/users.ts';
import type { SecretBox } from '../../store/secrets.ts';
import { canonicalDidValue, spendSignature } from './auth.ts';
import { ed25519SignatureKey, type ReplayGuard } from './replay.ts';
import { refuseDuplicates } from './conflicts.ts';
import { type Fields, requiredText, text, timestamp, userid } from './fields.ts';
import {
  ED25519_HEX,
  ETH_ADDRESS,
  TIMESTAMP_WINDOW_MS,
  isFresh,
  recoverPersonalSignAddress,
  sha3_224Hex,
  verifyEd25519,
} from './signature.ts';

type Db = Kysely<Database>;

/** A temporary key may live at most this long (the SDK asks for one day by default). */
export const MAX_LOGIN_KEY_LIFETIME_MS = 30 * 24 * 60 * 60 * 1000;
/**
 * Unexpired temporary keys one user may hold; a login beyond it retires the oldest. Every
 * login adds a key that lives up to 30 days, and a ConnectReq, which names no key, is
 * checked against the newest of them.
 */
export const MAX_LOGIN_KEYS_PER_USER = 32;

const DID_TYPE = /^[a-z0-9_]{1,32}$/;
const ED25519_RULE = { max: 64, pattern: ED25519_HEX, patternName: 'the 64-character lowercase hex of an ed25519 public key' };

export interface AccountInfo {
  userid: string;
  did_type: string;
  did_value: string;
  main_pubkey: string;
  pubkey_type: string;
}

function staleTimestamp(): HeraldError {
  return unauthorized(`timestamp is more than ${TIMESTAMP_WINDOW_MS / 60_000} minutes away from the server's time`);
}

/** POST /api/get_user_info/: who registered this decentralised id, with which main key. */
export async function userInfo(db: Db, fields: Fields): Promise<AccountInfo> {
  const didType = requiredText(fields, 'did_type', { max: 32, pattern: DID_TYPE, patternName: 'a did type such as eth' });
  const didValue = requiredText(fields, 'did_value', { max: 200 });
  timestamp(fields);
  const account = await db
    .selectFrom('web3mq_accounts')
    .selectAll()
    .where('did_type', '=', didType)
    .where('did_value', '=', canonicalDidValue(didType, didValue))
    .executeTakeFirst();
  // The wording is Web3MQ's own public example.
  if (!account) throw notFound('User not found');
  return {
    userid: account.user_id,
    did_type: account.did_type,
    did_value: account.did_value,
    main_pubkey: account.main_pubkey,
    pubkey_type: account.pubkey_type,
  };
}

/** The nonce the register sign-in text must carry, binding the wallet signature to this key. */
export function registerNonce(f: {
  userid: string;
  pubkeyType: string;
  pubkeyValue: string;
  didType: string;
  didValue: string;
  timestamp: string;
}): string {
  return sha3_224Hex(f.userid + f.pubkeyType + f.pubkeyValue + f.didType + f.didValue + f.timestamp);
}

/**
 * POST /api/user_register_v2/: an Ethereum wallet signs a text whose nonce commits to the
 * userid, the main key and the timestamp; the main key is then the user's, and the user is
 * an ordinary Herald user (same feed, friends and devices).
 */
export async function register(db: Db, secrets: SecretBox, guard: ReplayGuard, fields: Fields, now = Date.now()): Promise<AccountInfo> {
  const id = userid(fields);
  const didType = requiredText(fields, 'did_type', { max: 32 });
  if (didType !== 'eth') throw badRequest(`did_type ${JSON.stringify(didType)} is not supported: only eth wallets can register`);
  const didValue = requiredText(fields, 'did_value', {
    max: 42,
    pattern: ETH_ADDRESS,
    patternName: 'an Ethereum address (0x and 40 hex digits)',
  });
  const didSignature = requiredText(fields, 'did_signature', { max: 200 });
  const signatureContent = requiredText(fields, 'signature_content', { max: 4000 });
  const pubkeyType = requiredText(fields, 'pubkey_type', { max: 16 });
  if (pubkeyType !== 'ed25519') throw badRequest('pubkey_type must be ed25519');
  const pubkeyValue = requiredText(fields, 'pubkey_value', ED25519_RULE);
  const time = timestamp(fields);
  const nickname = text(fields, 'nickname', { max: 100, optional: true });
  if (!isFresh(time.ms, now)) throw staleTimestamp();

  const nonce = registerNonce({ userid: id, pubkeyType, pubkeyValue, didType, didValue, timestamp: time.text });
  if (!signatureContent.includes(`Nonce: ${nonce}`)) {
    throw unauthorized(
      'signature_content must contain "Nonce: " + sha3_224(userid + pubkey_type + pubkey_value + did_type + did_value + timestamp)',
    );
  }
  const signer = recoverPersonalSignAddress(signatureContent, didSignature);
  if (!signer || signer !== didValue.toLowerCase()) {
    throw unauthorized('did_signature is not a personal-sign signature of signature_content by did_value');
  }
  // An Ethereum signature has a second valid form (s and n - s), so the register is
  // remembered by its nonce, which commits to everything it installs.
  await spendSignature(guard, `register:${nonce}`, id, time.ms, 'write', now);

  const canonical = canonicalDidValue(didType, didValue);
  return refuseDuplicates(
    () =>
      db.transaction().execute(async (trx) => {
        if (await trx.selectFrom('users').select('id').where('id', '=', id).executeTakeFirst()) {
          throw conflict(`userid ${id} is already registered`);
        }
        const byDid = await trx
          .selectFrom('web3mq_accounts')
          .select('user_id')
          .where('did_type', '=', didType)
          .where('did_value', '=', canonical)
          .executeTakeFirst();
        if (byDid) throw conflict(`${didType}:${canonical} is already registered as ${byDid.user_id}`);
        if (await trx.selectFrom('web3mq_accounts').select('user_id').where('main_pubkey', '=', pubkeyValue).executeTakeFirst()) {
          throw conflict('pubkey_value is already the main key of another user');
        }
        const name = nickname?.trim() || canonical;
        await trx
          .insertInto('users')
          .values({
            id,
            // Herald users need a unique e-mail address; a Web3MQ user has none.
            email: `${id}@web3mq.invalid`,
            name,
            nick: name,
            // A Web3MQ user signs with their keys; the API key every user has is never shown.
            ...apiKeyColumns(secrets, id, newApiKey()),
            availability: 'offline',
            availability_changed_at: 0,
            created_at: now,
          })
          .execute();
        await trx
          .insertInto('web3mq_accounts')
          .values({
            user_id: id,
            did_type: didType,
            did_value: canonical,
            main_pubkey: pubkeyValue,
            pubkey_type: 'ed25519',
            created_at: now,
          })
          .execute();
        return { userid: id, did_type: didType, did_value: canonical, main_pubkey: pubkeyValue, pubkey_type: 'ed25519' };
      }),
    'this userid, did or main key was registered at the same moment',
  );
}

export interface LoginResult {
  userid: string;
  pubkey_value: string;
  pubkey_expired_timestamp: number;
}

/**
 * POST /api/user_login_v2/: the main key signs
 * sha3_224(userid + pubkey_value + pubkey_expired_timestamp + timestamp), which installs
 * pubkey_value as a temporary key until pubkey_expired_timestamp.
 */
export async function login(db: Db, guard: ReplayGuard, fields: Fields, now = Date.now()): Promise<LoginResult> {
  const id = userid(fields);
  const didType = requiredText(fields, 'did_type', { max: 32 });
  const didValue = requiredText(fields, 'did_value', { max: 200 });
  const time = timestamp(fields);
  const expiry = timestamp(fields, 'pubkey_expired_timestamp');
  const loginSignature = requiredText(fields, 'login_signature', { max: 200 });
  const signatureContent = requiredText(fields, 'signature_content', { max: 56 });
  const mainPubkey = requiredText(fields, 'main_pubkey', ED25519_RULE);
  const pubkeyType = text(fields, 'pubkey_type', { max: 16, optional: true }) ?? 'ed25519';
  if (pubkeyType !== 'ed25519') throw badRequest('pubkey_type must be ed25519');
  const pubkeyValue = requiredText(fields, 'pubkey_value', ED25519_RULE);
  if (expiry.ms <= now) throw badRequest('pubkey_expired_timestamp must be in the future');
  if (expiry.ms > now + MAX_LOGIN_KEY_LIFETIME_MS) throw badRequest('pubkey_expired_timestamp may be at most 30 days ahead');
  if (pubkeyValue === mainPubkey) throw badRequest('pubkey_value must be a new temporary key, not the main key');

  const account = await db.selectFrom('web3mq_accounts').selectAll().where('user_id', '=', id).executeTakeFirst();
  if (!account) throw notFound('User not found');
  if (didType !== account.did_type || canonicalDidValue(didType, didValue) !== account.did_value) {
    throw forbidden("did_type and did_value are not this user's");
  }
  if (mainPubkey !== account.main_pubkey) throw unauthorized("main_pubkey is not this user's main key");
  if (!isFresh(time.ms, now)) throw staleTimestamp();
  if (signatureContent !== sha3_224Hex(id + pubkeyValue + expiry.text + time.text)) {
    throw unauthorized('signature_content must be sha3_224(userid + pubkey_value + pubkey_expired_timestamp + timestamp)');
  }
  if (!verifyEd25519(mainPubkey, signatureContent, loginSignature)) {
    throw unauthorized('bad signature: login_signature does not verify with the main key');
  }
  // A replayed login would bring back a key retired by MAX_LOGIN_KEYS_PER_USER.
  await spendSignature(guard, ed25519SignatureKey(loginSignature), id, time.ms, 'write', now);

  await refuseDuplicates(
    () =>
      db.transaction().execute(async (trx) => {
        const existing = await trx.selectFrom('web3mq_login_keys').select('user_id').where('pubkey', '=', pubkeyValue).executeTakeFirst();
        if (existing && existing.user_id !== id) throw conflict('pubkey_value is already the key of another user');
        if (await trx.selectFrom('web3mq_accounts').select('user_id').where('main_pubkey', '=', pubkeyValue).executeTakeFirst()) {
          throw conflict('pubkey_value is already a main key');
        }
        // Expired keys of this user are of no further use.
        await trx.deleteFrom('web3mq_login_keys').where('user_id', '=', id).where('expires_at', '<=', now).execute();
        if (existing) {
          await trx.updateTable('web3mq_login_keys').set({ expires_at: expiry.ms }).where('pubkey', '=', pubkeyValue).execute();
        } else {
          const held = await trx
            .selectFrom('web3mq_login_keys')
            .select('pubkey')
            .where('user_id', '=', id)
            .orderBy('created_at', 'asc')
            .orderBy('pubkey', 'asc')
            .execute();
          const retired = held.slice(0, Math.max(0, held.length - (MAX_LOGIN_KEYS_PER_USER - 1))).map((key) => key.pubkey);
          if (retired.length > 0) await trx.deleteFrom('web3mq_login_keys').where('pubkey', 'in', retired).execute();
          await trx
            .insertInto('web3mq_login_keys')
            .values({ pubkey: pubkeyValue, user_id: id, expires_at: expiry.ms, created_at: now })
            .execute();
        }
      }),
    'pubkey_value was installed by another login at the same moment',
  );
  return { userid: id, pubkey_value: pubkeyValue, pubkey_expired_timestamp: expiry.ms };
}

/**
 * The admin attaches a main ed25519 key to an existing Herald user (an Ozeki user, say),
 * who can then log in to the Web3MQ API. Without a did the user's did is `herald:<user id>`.
 * Replacing a main key revokes the temporary keys made with the old one.
 */
export async function attachMainKey(db: Db, userId: string, fields: Fields, now = Date.now()): Promise<AccountInfo> {
  const pubkey = requiredText(fields, 'pubkey', ED25519_RULE);
  const didType =
    text(fields, 'did_type', { max: 32, optional: true, pattern: DID_TYPE, patternName: 'a did type such as eth' }) ?? 'herald';
  const rawDidValue = text(fields, 'did_value', { max: 200, optional: true }) ?? userId;
  if (didType === 'eth' && !ETH_ADDRESS.test(rawDidValue)) throw badRequest('did_value must be an Ethereum address for did_type eth');
  const didValue = canonicalDidValue(didType, rawDidValue);
  return db.transaction().execute(async (trx) => {
    if (!(await trx.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst())) {
      throw notFound(`no such user: ${userId}`);
    }
    const byDid = await trx
      .selectFrom('web3mq_accounts')
      .select('user_id')
      .where('did_type', '=', didType)
      .where('did_value', '=', didValue)
      .executeTakeFirst();
    if (byDid && byDid.user_id !== userId) throw conflict(`${didType}:${didValue} belongs to another user`);
    const byKey = await trx.selectFrom('web3mq_accounts').select('user_id').where('main_pubkey', '=', pubkey).executeTakeFirst();
    if (byKey && byKey.user_id !== userId) throw conflict('pubkey is already the main key of another user');
    if (await trx.selectFrom('web3mq_login_keys').select('user_id').where('pubkey', '=', pubkey).executeTakeFirst()) {
      throw conflict('pubkey is already a temporary login key');
    }
    const current = await trx.selectFrom('web3mq_accounts').selectAll().where('user_id', '=', userId).executeTakeFirst();
    if (current) {
      if (current.main_pubkey !== pubkey) await trx.deleteFrom('web3mq_login_keys').where('user_id', '=', userId).execute();
      await trx
        .updateTable('web3mq_accounts')
        .set({ did_type: didType, did_value: didValue, main_pubkey: pubkey, pubkey_type: 'ed25519' })
        .where('user_id', '=', userId)
        .execute();
    } else {
      await trx
        .insertInto('web3mq_accounts')
        .values({ user_id: userId, did_type: didType, did_value: didValue, main_pubkey: pubkey, pubkey_type: 'ed25519', created_at: now })
        .execute();
    }
    return { userid: userId, did_type: didType, did_value: didValue, main_pubkey: pubkey, pubkey_type: 'ed25519' };
  });
}
