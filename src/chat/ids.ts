import { createHash, randomBytes } from 'node:crypto';

/** Ozeki: a user id is the lowercase hex MD5 of the e-mail address (trimmed, lower-cased). */
export function userIdOf(email: string): string {
  return createHash('md5').update(normaliseEmail(email)).digest('hex');
}

/** The user id a caller names: an e-mail address stands for its user, an id for itself. */
export function userIdNamed(emailOrId: string): string {
  return emailOrId.includes('@') ? userIdOf(emailOrId) : emailOrId.trim().toLowerCase();
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;
/** C0 and C1 control characters and DEL: never part of an address, and unsafe in logs. */
const CONTROL = /\p{Cc}/u;
export function isEmail(value: string): boolean {
  const address = value.trim();
  return EMAIL.test(address) && !CONTROL.test(address) && value.length <= 320;
}

/**
 * A one-to-one conversation has one id whoever starts it: the MD5 of "direct:" and the two
 * user ids in ascending order joined by ":". A group gets 32 random hex characters.
 */
export function directConversationId(a: string, b: string): string {
  const [first, second] = [a, b].sort();
  return createHash('md5').update(`direct:${first}:${second}`).digest('hex');
}

export function groupConversationId(): string {
  return randomBytes(16).toString('hex');
}

export function newApiKey(): string {
  return randomBytes(24).toString('hex');
}

export const STATION = /^[0-9a-fA-F]{32}$/;

/** Ozeki timestamps: `yyyy-MM-dd HH:mm:ss`, UTC. */
const OZEKI_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

export function parseOzekiTime(value: string): number | null {
  // Calls made in the same second carry the same text.
  if (value === lastParsed.text) return lastParsed.ms;
  const ms = parseOzekiTimeText(value);
  lastParsed = { text: value, ms };
  return ms;
}
let lastParsed: { text: string; ms: number | null } = { text: '', ms: null };

function parseOzekiTimeText(value: string): number | null {
  const m = OZEKI_TIME.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Reject dates that Date.UTC silently rolls over (2024-02-31 and the like).
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    return null;
  }
  return ms;
}

export function formatOzekiTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}
