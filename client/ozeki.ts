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

export interface OzekiClientOptions {
  /**
   * Extra CA certificate(s) (PEM) to trust for an https:// base URL, e.g. Herald's
   * self-signed one (data/tls-cert.pem). Node only: a browser trusts what its system trusts.
   */
  ca?: string | string[];
  /** Give up on a call that has not been answered after this long (default: wait); it then rejects with a TimeoutError. */
  timeoutMs?: number;
}

interface Answer {
  status: number;
  text: string;
}

export class OzekiClient {
  constructor(
    /** Base URL of the server, e.g. http://127.0.0.1:9080 or https://chat.example.org:9443 */
    readonly baseUrl: string,
    /** This client instance's station id: 32 hex characters. */
    readonly station: string,
    private readonly options: OzekiClientOptions = {},
  ) {}

  /** Sends one API call; resolves with the HTTP status and the parsed body, whatever the status. */
  async call(api: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    const url = `${this.baseUrl}/?srv=chatserver&api=${encodeURIComponent(api)}`;
    const text = JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), ...body });
    const allHeaders = { 'content-type': 'application/json', 'ozeki-station': this.station, ...headers };
    const signal = this.options.timeoutMs === undefined ? undefined : AbortSignal.timeout(this.options.timeoutMs);
    const answer = this.options.ca
      ? await postTrusting(this.options.ca, url, allHeaders, text, signal)
      : await postWithFetch(url, allHeaders, text, signal);
    let parsed: OzekiResponse;
    try {
      parsed = JSON.parse(answer.text) as OzekiResponse;
    } catch {
      throw new Error(`${api}: HTTP ${answer.status} with a body that is not JSON: ${answer.text.slice(0, 200)}`);
    }
    return { httpStatus: answer.status, body: parsed };
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

async function postWithFetch(url: string, headers: Record<string, string>, body: string, signal?: AbortSignal): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers, body, ...(signal ? { signal } : {}) });
  return { status: response.status, text: await response.text() };
}

/** What postTrusting uses of node:http and node:https, typed here so the file needs no Node types. */
interface NodeHttpModule {
  request(
    url: URL,
    options: Record<string, unknown>,
    onResponse: (response: {
      statusCode?: number;
      setEncoding(encoding: 'utf8'): void;
      on(event: 'data', listener: (chunk: string) => void): void;
      on(event: 'end', listener: () => void): void;
      on(event: 'error', listener: (error: Error) => void): void;
    }) => void,
  ): { on(event: 'error', listener: (error: Error) => void): void; end(body: string): void };
}

/** The module of each protocol, named at run time so that a browser bundle never follows it. */
const NODE_HTTP_MODULES: Record<string, string> = { 'https:': 'node:https', 'http:': 'node:http' };

/**
 * A POST that trusts the given CA. Node's fetch takes no CA of its own (that needs undici's
 * Agent, which is not part of Node's API), so this goes through node:https, loaded only here
 * so that the client still works in a browser.
 */
async function postTrusting(
  ca: string | string[],
  url: string,
  headers: Record<string, string>,
  body: string,
  signal?: AbortSignal,
): Promise<Answer> {
  const target = new URL(url);
  const { request } = (await import(NODE_HTTP_MODULES[target.protocol] ?? 'node:https')) as NodeHttpModule;
  return new Promise((resolve, reject) => {
    // A timeout rejects as fetch does: with the signal's TimeoutError, not the socket's abort.
    const fail = (error: Error) => reject(signal?.aborted ? signal.reason : error);
    const length = new TextEncoder().encode(body).length;
    const outgoing = request(
      target,
      { method: 'POST', headers: { ...headers, 'content-length': length }, ca, ...(signal ? { signal } : {}) },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        response.on('error', fail);
      },
    );
    outgoing.on('error', fail);
    outgoing.end(body);
  });
}
