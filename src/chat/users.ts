import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, UsersTable } from '../store/schema.ts';
import { badRequest, conflict, notFound } from '../errors.ts';
import { isEmail, newApiKey, normaliseEmail, userIdNamed, userIdOf } from './ids.ts';
import { Statement } from '../store/statement.ts';
import { sealContext, type SecretBox } from '../store/secrets.ts';

type Db = Kysely<Database>;

/** A user as read from the database. */
export type User = Selectable<UsersTable>;

export interface NewUser {
  email: string;
  name: string;
  nick?: string;
}

/** How a user's API key lies in the database: its lookup hash and the key sealed. */
export function apiKeyColumns(secrets: SecretBox, userId: string, apikey: string): Pick<UsersTable, 'apikey_hash' | 'apikey_sealed'> {
  return { apikey_hash: secrets.lookupHash(apikey), apikey_sealed: secrets.seal(apikey, sealContext.apikey(userId)) };
}

/** A user's API key, opened (Ozeki-Signature HMACs are keyed with it). */
export function apiKeyOf(secrets: SecretBox, user: Pick<User, 'id' | 'apikey_sealed'>): string {
  return secrets.open(user.apikey_sealed, sealContext.apikey(user.id));
}

/** Makes a user; the answer is the only time their API key is seen (the database keeps it sealed). */
export async function createUser(db: Db, secrets: SecretBox, input: NewUser): Promise<{ userid: string; apikey: string }> {
  if (typeof input.email !== 'string' || !isEmail(input.email)) throw badRequest('email must be an e-mail address');
  if (typeof input.name !== 'string' || input.name.trim() === '' || input.name.length > 200) {
    throw badRequest('name must be a non-empty string of at most 200 characters');
  }
  if (input.nick !== undefined && (typeof input.nick !== 'string' || input.nick.length > 100)) {
    throw badRequest('nick must be a string of at most 100 characters');
  }
  const email = normaliseEmail(input.email);
  const userid = userIdOf(email);
  const apikey = newApiKey();
  const existing = await db.selectFrom('users').select('id').where('id', '=', userid).executeTakeFirst();
  if (existing) throw conflict(`a user with e-mail ${email} already exists`);
  await db
    .insertInto('users')
    .values({
      id: userid,
      email,
      name: input.name.trim(),
      nick: (input.nick ?? input.name).trim(),
      ...apiKeyColumns(secrets, userid, apikey),
      availability: 'offline',
      availability_changed_at: 0,
      created_at: Date.now(),
    })
    .execute();
  return { userid, apikey };
}

/** A page of the user list: a case-insensitive search, and where the previous page ended. */
export interface UserListing {
  /** Part of the e-mail address, name or nick, in any case. */
  search?: string;
  limit?: number;
  /** The `next` of the previous page. */
  after?: string;
}

/** Users are listed oldest first; a page ends at a [created_at, id] pair, written as `created_at.id`. */
function parseCursor(after: string): [createdAt: number, id: string] {
  const match = /^(\d{1,15})\.([0-9a-f]{32})$/.exec(after);
  if (!match) throw badRequest('after: must be the next value of a previous page');
  return [Number(match[1]), match[2]];
}

/** `search` as a LIKE pattern that matches it literally anywhere in a lower-cased column. */
function containsPattern(search: string): string {
  return `%${search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Users oldest first, with their badge. Without a limit, every user (the CLI's list); with
 * one, a page and the cursor of the next (null at the last page).
 */
export async function listUsers(db: Db, listing: UserListing = {}) {
  let query = db
    .selectFrom('users')
    .select(['id as userid', 'email', 'name', 'nick', 'availability', 'created_at'])
    // The badge of each user's newest notification is their unread total.
    .select(
      sql<number>`coalesce((SELECT badge FROM notifications WHERE notifications.epoch = (SELECT epoch FROM feed_epochs WHERE feed_epochs.user_key = users.key ORDER BY first_seq DESC LIMIT 1) AND notifications.user_key = users.key ORDER BY seq DESC LIMIT 1), 0)`.as(
        'unread',
      ),
    )
    .orderBy('created_at')
    .orderBy('id');
  if (listing.search) {
    // lower() on both sides: PostgreSQL's LIKE minds case, SQLite's only outside ASCII.
    const pattern = containsPattern(listing.search);
    query = query.where((eb) =>
      eb.or((['email', 'name', 'nick'] as const).map((column) => sql<boolean>`lower(${sql.ref(column)}) LIKE ${pattern} ESCAPE '\\'`)),
    );
  }
  if (listing.after !== undefined) {
    const [createdAt, id] = parseCursor(listing.after);
    query = query.where((eb) => eb.or([eb('created_at', '>', createdAt), eb.and([eb('created_at', '=', createdAt), eb('id', '>', id)])]));
  }
  if (listing.limit === undefined) return { users: await query.execute(), next: null };
  // One row more than asked says whether there is a next page.
  const rows = await query.limit(listing.limit + 1).execute();
  const users = rows.slice(0, listing.limit);
  const last = users.at(-1);
  return { users, next: rows.length > listing.limit && last ? `${last.created_at}.${last.userid}` : null };
}

export async function getUser(db: Db, userId: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
}

/** Accepts a user id or an e-mail address. */
export async function resolveUser(db: Db, emailOrId: string): Promise<User> {
  const id = userIdNamed(emailOrId);
  const user = await getUser(db, id);
  if (!user) throw notFound(`no such user: ${emailOrId}`);
  return user;
}

export async function userByApiKey(db: Db, secrets: SecretBox, apikey: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('apikey_hash', '=', secrets.lookupHash(apikey)).executeTakeFirst();
}

/**
 * Gives a user (e-mail or id) a new API key and returns it, the only time it is seen. The old
 * key stops opening a login at once on every node (logins look the key's hash up in the
 * database); the user's stations stay bound.
 */
export async function resetApiKey(db: Db, secrets: SecretBox, emailOrId: string): Promise<{ userid: string; apikey: string }> {
  const user = await resolveUser(db, emailOrId);
  const apikey = newApiKey();
  await db
    .updateTable('users')
    .set(apiKeyColumns(secrets, user.id, apikey))
    .where('id', '=', user.id)
    .execute();
  return { userid: user.id, apikey };
}

/** The user a station is bound to, in one query (every authenticated API call asks). */
const USER_OF_STATION = new Statement<User>(
  'SELECT users.* FROM devices JOIN users ON users.id = devices.user_id WHERE devices.station = ?',
);

/** The user a station is bound to: asked on every Ozeki call, so written once as SQL. */
export async function userOfStation(db: Db, station: string): Promise<User | undefined> {
  return USER_OF_STATION.first(db, [station]);
}
