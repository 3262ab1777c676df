/*
 * The console's calls to Herald's /v1 API, with the bearer token the operator signed in with.
 * Every number the console shows comes from these answers.
 */

/** A refusal from /v1: its status and the `error` sentence. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  /** The token does not hold (401) or is not enough (403): the console asks for another. */
  get refusesToken(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export interface Stats {
  connections: { websocket: number; udp: number; web3mq: number };
  outbox: Record<string, { pending: number; retrying: number; held: number; dead: number }>;
  series: { start: number; stepSeconds: number } & Record<'notifications' | 'delivered' | 'retried' | 'dead' | 'failed', number[]>;
}

export interface User {
  userid: string;
  email: string;
  name: string;
  nick: string;
  availability: string;
  unread: number;
  created_at: number;
}

export interface Device {
  station: string;
  platform: string;
  push: { provider: string; enabled: boolean; disabledat: number | null; disabledreason: string | null } | null;
  ackedseq: number;
  deliveredseq: number;
  lastseen: number;
  created: number;
}

export interface TestPushAnswer {
  station: string;
  provider: string;
  outcome: { kind: 'delivered' | 'retry' | 'dead' | 'failed'; detail?: string; reason?: string; afterMs?: number };
}

/** One notification as the live tail shows it. */
export interface TailEvent {
  userid: string;
  seq: number;
  id: string;
  type: string;
  title: string;
  conversationid: string | null;
  badge: number;
  silent: boolean;
  created: number;
}

export class Api {
  constructor(readonly token: string) {}

  private async call<T>(method: string, path: string, signal?: AbortSignal): Promise<T> {
    const response = await fetch(`/v1${path}`, { method, headers: { authorization: `Bearer ${this.token}` }, signal });
    if (response.status === 204) return undefined as T;
    const body = (await response.json().catch(() => ({}))) as T & { error?: string };
    if (!response.ok) throw new ApiError(response.status, body.error ?? `${response.status} ${response.statusText}`);
    return body;
  }

  stats(): Promise<Stats> {
    return this.call('GET', '/stats');
  }

  users(search: string, after?: string): Promise<{ users: User[]; next: string | null }> {
    const query = new URLSearchParams({ limit: '50' });
    if (search !== '') query.set('search', search);
    if (after) query.set('after', after);
    return this.call('GET', `/users?${query}`);
  }

  devices(userId: string): Promise<{ devices: Device[] }> {
    return this.call('GET', `/users/${encodeURIComponent(userId)}/devices`);
  }

  removeDevice(userId: string, station: string): Promise<void> {
    return this.call('DELETE', `/users/${encodeURIComponent(userId)}/devices/${station}`);
  }

  testPush(userId: string, station: string): Promise<TestPushAnswer> {
    return this.call('POST', `/users/${encodeURIComponent(userId)}/devices/${station}/test-push`);
  }

  /**
   * Reads the live tail until `signal` aborts or the stream ends. fetch(), not EventSource:
   * only fetch can send the bearer token.
   */
  async tail(onEvent: (event: TailEvent) => void, signal: AbortSignal): Promise<void> {
    const response = await fetch('/v1/notifications/tail', { headers: { authorization: `Bearer ${this.token}` }, signal });
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => ({}))) as { error?: string };
      throw new ApiError(response.status, body.error ?? `${response.status} ${response.statusText}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      let cut: number;
      while ((cut = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, cut);
        buffered = buffered.slice(cut + 2);
        // Lines starting with ':' are the server's heartbeats.
        for (const line of block.split('\n')) if (line.startsWith('data: ')) onEvent(JSON.parse(line.slice(6)) as TailEvent);
      }
    }
  }
}
