import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign as edSign,
  type KeyObject,
} from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import type { Store } from '../../src/store/db.ts';
import { feedHead } from '../../src/notify/feed.ts';

/* Test-side Web3MQ: an Ethereum wallet, ed25519 keys, and a client that signs its calls. */

export function sha3_224(text: string): string {
  return createHash('sha3-224').update(text, 'utf8').digest('hex');
}

export interface Wallet {
  address: string;
  /** EIP-191 personal-sign, as a wallet's `personal_sign` returns it: 0x r ‖ s ‖ v(27/28). */
  personalSign(message: string): string;
}

export function newWallet(): Wallet {
  const { secretKey, publicKey } = secp256k1.keygen();
  const uncompressed = secp256k1.Point.fromBytes(publicKey).toBytes(false);
  const address = '0x' + Buffer.from(keccak_256(uncompressed.subarray(1)).subarray(12)).toString('hex');
  return {
    address,
    personalSign(message) {
      const body = Buffer.from(message, 'utf8');
      const digest = keccak_256(Buffer.concat([Buffer.from(`\x19Ethereum Signed Message:\n${body.length}`, 'utf8'), body]));
      const signature = secp256k1.sign(digest, secretKey, { prehash: false, format: 'recovered' });
      return '0x' + Buffer.from(signature.subarray(1)).toString('hex') + (signature[0] + 27).toString(16);
    },
  };
}

export interface Ed25519Key {
  /** Lowercase hex of the raw 32-byte public key. */
  publicHex: string;
  /** Lowercase hex of the raw 32-byte private seed. */
  privateHex: string;
  privateKey: KeyObject;
  /** base64(ed25519 signature of the UTF-8 text). */
  sign(text: string): string;
}

export function newEd25519Key(): Ed25519Key {
  const { privateKey } = generateKeyPairSync('ed25519');
  return ed25519FromSeedHex(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32).toString('hex'));
}

// PKCS#8 DER prefix of an ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An ed25519 key from the hex of its 32-byte seed (the form the Web3MQ SDK keeps keys in). */
export function ed25519FromSeedHex(privateHex: string): Ed25519Key {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(privateHex, 'hex')]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicHex = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
  return {
    publicHex,
    privateHex,
    privateKey,
    sign: (text) => edSign(null, Buffer.from(text, 'utf8'), privateKey).toString('base64'),
  };
}

export interface Reply {
  status: number;
  body: { code: number; msg: string; data?: any };
}

async function call(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  payload: Record<string, unknown>,
  headers: Record<string, string>,
): Promise<Reply> {
  let url = `${base}${path}`;
  const init: RequestInit = { method, headers: { ...headers } };
  if (method === 'GET') {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(payload)) if (value !== undefined) query.set(key, String(value));
    url += `?${query}`;
  } else {
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
    init.body = JSON.stringify(payload);
  }
  const response = await fetch(url, init);
  return { status: response.status, body: (await response.json()) as Reply['body'] };
}

export function post(base: string, path: string, payload: Record<string, unknown>, headers: Record<string, string> = {}) {
  return call(base, 'POST', path, payload, headers);
}

/** A Web3MQ user driven with raw HTTP calls, signing exactly as PROTOCOLS.md §2 says. */
export class RawWeb3mqUser {
  readonly wallet = newWallet();
  readonly mainKey = newEd25519Key();
  tempKey = newEd25519Key();
  readonly userid = `user:${sha3_224('eth' + this.wallet.address + randomBytes(8).toString('hex'))}`;

  private lastTimestamp = 0;

  constructor(readonly base: string) {}

  /**
   * Now, but never the same millisecond twice: Herald refuses a signature it has seen, and
   * two calls signing the same string in one millisecond would carry the same signature.
   */
  nextTimestamp(): number {
    this.lastTimestamp = Math.max(Date.now(), this.lastTimestamp + 1);
    return this.lastTimestamp;
  }

  get didkey(): string {
    return `eth:${this.wallet.address}`;
  }

  headers(): Record<string, string> {
    return { 'web3mq-request-pubkey': this.tempKey.publicHex, didkey: this.didkey };
  }

  registerBody(timestamp = Date.now()): Record<string, unknown> {
    const nonce = sha3_224(this.userid + 'ed25519' + this.mainKey.publicHex + 'eth' + this.wallet.address + timestamp);
    const content = `Web3MQ wants you to sign in with your MetaMask account:\n${this.wallet.address}\nFor Web3MQ register\nURI: http://localhost\nVersion: 1\n\nNonce: ${nonce}\nIssued At: now`;
    return {
      userid: this.userid,
      did_type: 'eth',
      did_value: this.wallet.address,
      did_signature: this.wallet.personalSign(content),
      signature_content: content,
      pubkey_type: 'ed25519',
      pubkey_value: this.mainKey.publicHex,
      timestamp,
      nickname: '',
    };
  }

  loginBody(timestamp = this.nextTimestamp(), expires = timestamp + 24 * 3600 * 1000): Record<string, unknown> {
    const content = sha3_224(this.userid + this.tempKey.publicHex + expires + timestamp);
    return {
      userid: this.userid,
      did_type: 'eth',
      did_value: this.wallet.address,
      timestamp,
      pubkey_expired_timestamp: expires,
      login_signature: this.mainKey.sign(content),
      signature_content: content,
      main_pubkey: this.mainKey.publicHex,
      pubkey_type: 'ed25519',
      pubkey_value: this.tempKey.publicHex,
    };
  }

  /** Registers and logs in, failing loudly if either is refused. */
  async registerAndLogin(): Promise<this> {
    const registered = await post(this.base, '/api/user_register_v2/', this.registerBody());
    if (registered.body.code !== 0) throw new Error(`register refused: ${JSON.stringify(registered.body)}`);
    const loggedIn = await post(this.base, '/api/user_login_v2/', this.loginBody());
    if (loggedIn.body.code !== 0) throw new Error(`login refused: ${JSON.stringify(loggedIn.body)}`);
    return this;
  }

  /** A signed POST: userid, timestamp and web3mq_signature over `userid + parts… + timestamp`. */
  signedPost(path: string, fields: Record<string, unknown>, signedParts: string[], timestamp = this.nextTimestamp()) {
    const signature = this.tempKey.sign(this.userid + signedParts.join('') + timestamp);
    return post(this.base, path, { userid: this.userid, timestamp, web3mq_signature: signature, ...fields }, this.headers());
  }

  /** The history, signed the way Web3MQ's document says (notice_type, else topic). */
  history(params: { topic?: string; notice_type?: string; page?: number; size?: number }, timestamp = Date.now()) {
    const signed = this.userid + (params.notice_type ?? params.topic ?? '') + timestamp;
    return call(
      this.base,
      'GET',
      '/api/notification/history/',
      { userid: this.userid, page: 1, size: 20, ...params, timestamp, web3mq_signature: this.tempKey.sign(signed) },
      this.headers(),
    );
  }

  setStatus(messages: string[], status: string, timestamp = this.nextTimestamp()) {
    return this.signedPost('/api/notification/status/', { messages, status }, [status], timestamp);
  }

  get(path: string, query: Record<string, unknown>, headers = this.headers()) {
    return call(this.base, 'GET', path, query, headers);
  }
}

/** Everything a refused Web3MQ call must leave as it was. */
export async function web3mqSnapshot(store: Store) {
  const db = store.db;
  const all = async (table: any, order: string) =>
    db
      .selectFrom(table)
      .selectAll()
      .orderBy(order as any)
      .execute();
  return {
    users: await Promise.all(
      (await db.selectFrom('users').select('id').orderBy('id').execute()).map(async ({ id }) => ({ id, ...(await feedHead(db, id)) })),
    ),
    notifications: await db
      .selectFrom('notifications')
      .select(['user_key', 'seq', 'status', 'status_at'])
      .orderBy('user_key')
      .orderBy('seq')
      .execute(),
    friendships: await all('friendships', 'user_id'),
    accounts: await all('web3mq_accounts', 'user_id'),
    loginKeys: await all('web3mq_login_keys', 'pubkey'),
    friendRequests: await all('web3mq_friend_requests', 'requester_id'),
    groupMembers: await all('web3mq_group_members', 'user_id'),
    topics: await all('web3mq_topics', 'id'),
    subscriptions: await all('web3mq_subscriptions', 'user_id'),
  };
}
