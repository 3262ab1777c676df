/**
 * A small typed client for the Ozeki Chat API as Herald serves it. Used by the tests and
 * by `herald listen`; browsers and other clients can use it as it is.
 */
export interface OzekiResponse {
  status: 'OK' | 'ERROR';
  errormessage: string;
  [field: string]: unknown;
}

export function ozekiTime(date = new Date()): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

export class OzekiClient {
  constructor(
    /** Base URL of the server, e.g. http://127.0.0.1:9080 */
    readonly baseUrl: string,
    /** This client instance's station id: 32 hex characters. */
    readonly station: string,
    /** Give up on a call that has not been answered after this long (default: wait). */
    readonly timeoutMs?: number,
  ) {}

  /** Sends one API call; resolves with the HTTP status and the parsed body, whatever the status. */
  async call(api: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    const response = await fetch(`${this.baseUrl}/?srv=chatserver&api=${encodeURIComponent(api)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ozeki-station': this.station, ...headers },
      body: JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), ...body }),
      ...(this.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(this.timeoutMs) }),
    });
    return { httpStatus: response.status, body: (await response.json()) as OzekiResponse };
  }

  /** Like call, but throws unless the answer is status OK. */
  async ok(api: string, body: Record<string, unknown>): Promise<OzekiResponse> {
    const { httpStatus, body: answer } = await this.call(api, body);
    if (answer.status !== 'OK') throw new Error(`${api}/${String(body.action)}: ${httpStatus} ${answer.errormessage}`);
    return answer;
  }

  login(apikey: string, platform?: string) {
    return this.ok('chatlogin', { action: 'login', apikey, ...(platform ? { platform } : {}) });
  }

  createConversation(participantids: string[], extra: Record<string, unknown> = {}) {
    return this.ok('chatconversation', { action: 'create', participantids, ...extra });
  }

  /** Adds a message; `data` is the client-encrypted payload, passed through untouched. */
  addMessage(conversationid: string, id: string, data: string) {
    const created = ozekiTime();
    return this.ok('chatconversation', {
      action: 'add',
      conversationid,
      instance: '',
      message: JSON.stringify({ ID: id, Type: 'Message', Created: created, ValidUntil: '', Data: data }),
    });
  }

  download(conversationid: string, extra: Record<string, unknown> = {}) {
    return this.ok('chatconversation', { action: 'download', conversationid, instance: '', ...extra });
  }

  viewed(conversationid: string, messageids: string[] = []) {
    return this.ok('chatreports', { action: 'viewed', conversationid, instance: '', messageids });
  }

  changesSince(timestamp: string) {
    return this.ok('chatnotification', { action: 'download', timestamp });
  }
}
