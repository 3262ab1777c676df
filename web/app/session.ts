/**
 * What the app keeps in this browser (localStorage): its station, made once (32 hex
 * characters, the device Herald knows this browser as), the signed-in user, and per user the
 * last notification sequence seen, so a reload resumes the live connection with `since`.
 */
export interface Session {
  email: string;
  userid: string;
  name: string;
  vapidPublicKey: string;
}

const STATION_KEY = 'herald.station';
const SESSION_KEY = 'herald.session';
const seqKey = (userid: string) => `herald.lastseq.${userid}`;

export function station(): string {
  let value = localStorage.getItem(STATION_KEY);
  if (!value || !/^[0-9a-f]{32}$/.test(value)) {
    value = Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(STATION_KEY, value);
  }
  return value;
}

export function savedSession(): Session | undefined {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    return session?.userid ? session : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(session: Session): void {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function forgetSession(): void {
  const session = savedSession();
  if (session) localStorage.removeItem(seqKey(session.userid));
  localStorage.removeItem(SESSION_KEY);
}

export function savedSeq(userid: string): number | undefined {
  const value = Number(localStorage.getItem(seqKey(userid)) ?? NaN);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

export function saveSeq(userid: string, seq: number): void {
  localStorage.setItem(seqKey(userid), String(seq));
}

export function forgetSeq(userid: string): void {
  localStorage.removeItem(seqKey(userid));
}
