/**
 * The Ozeki Chat API calls the web app makes, typed: each is a POST to
 * `/?srv=chatserver&api=<name>` of the page's own origin with the station in `Ozeki-Station`
 * (client/ozeki.ts does the wire format). A refused call throws an OzekiError carrying the
 * server's `errormessage` and HTTP status.
 */
import { OzekiClient, type OzekiResponse } from '../../client/ozeki.ts';

export class OzekiError extends Error {
  constructor(
    message: string,
    readonly httpStatus: number,
  ) {
    super(message);
  }
}

export interface LoginAnswer {
  userid: string;
  fullname: string;
  nick: string;
  vapidpublickey: string;
  listeners: { ws: string; wss: string; udp: string };
}

export interface Participant {
  userid: string;
  username: string;
}

export interface Conversation {
  id: string;
  isgroup: boolean;
  participants: Participant[];
  displayname: string;
  lastmessageid: string;
  /** The caller's unread messages in it. */
  unread: number;
  mutedby: string[];
}

export interface QuietHours {
  start: string;
  end: string;
  timezone: string;
  days?: string[];
}

export interface Preferences {
  /** An Ozeki time (`yyyy-MM-dd HH:mm:ss`, UTC) or null. */
  dnduntil: string | null;
  quiethours: QuietHours | null;
  /** Conversation id → Ozeki time. */
  conversationmutes: Record<string, string>;
  alertkinds: string[] | null;
  silentnow: boolean;
}

export type PreferencesChange = Partial<{
  dnduntil: string | null;
  quiethours: QuietHours | null;
  conversationmutes: Record<string, string | null>;
}>;

export interface PushSubscriptionFields {
  endpoint: string;
  expirationTime?: number | null;
  keys: { p256dh: string; auth: string };
}

export class Ozeki {
  private readonly client: OzekiClient;

  constructor(
    readonly station: string,
    baseUrl = location.origin,
  ) {
    this.client = new OzekiClient(baseUrl, station);
  }

  private async call<T>(api: string, body: Record<string, unknown>): Promise<T & OzekiResponse> {
    let answer: { httpStatus: number; body: OzekiResponse };
    try {
      answer = await this.client.call(api, body);
    } catch {
      throw new OzekiError('Herald cannot be reached: check the network', 0);
    }
    if (answer.body.status !== 'OK') throw new OzekiError(answer.body.errormessage || `${api} failed`, answer.httpStatus);
    return answer.body as T & OzekiResponse;
  }

  login(apikey: string): Promise<LoginAnswer> {
    return this.call<LoginAnswer>('chatlogin', { action: 'login', apikey, platform: 'browser' });
  }

  async conversations(): Promise<Conversation[]> {
    return (await this.call<{ conversations: Conversation[] }>('chatconversation', { action: 'list' })).conversations;
  }

  viewed(conversationid: string, messageids: string[]): Promise<OzekiResponse> {
    return this.call('chatreports', { action: 'viewed', conversationid, instance: '', messageids });
  }

  registerPush(pushsubscription: PushSubscriptionFields | null): Promise<OzekiResponse> {
    return this.call('chatdevice', { action: 'register', platform: 'browser', pushsubscription });
  }

  async preferences(): Promise<Preferences> {
    return (await this.call<{ preferences: Preferences }>('chatpreferences', { action: 'get' })).preferences;
  }

  async setPreferences(change: PreferencesChange): Promise<Preferences> {
    return (await this.call<{ preferences: Preferences }>('chatpreferences', { action: 'set', ...change })).preferences;
  }
}

/** An Ozeki time (UTC) as a Date. */
export function fromOzekiTime(text: string): Date {
  return new Date(`${text.replace(' ', 'T')}Z`);
}

export { ozekiTime } from '../../client/ozeki.ts';
