/**
 * The frames of Herald's WebSocket push (`/ws`) and the events a receiver gives for them:
 * shared by the Node receiver (ws-receiver.ts) and the browser's (browser-receiver.ts).
 */

export interface NotificationFrame {
  type: 'notification';
  seq: number;
  id: string;
  /** message, availability, conversationlist, system.friend_request … */
  kind: string;
  conversationid: string | null;
  sender: string | null;
  title: string;
  body: string;
  badge: number;
  silent: boolean;
  created: number;
  data: Record<string, unknown>;
}

export interface CleanFrame {
  type: 'clean';
  seq: number;
  id: string;
  badge: number;
  conversationid: string | null;
  created: number;
}

export interface HelloFrame {
  type: 'hello';
  userid: string;
  station: string;
  /** The sequence the replay starts after. */
  since: number;
  lastseq: number;
  badge: number;
  /** The server's ping interval in milliseconds. */
  ping: number;
}

export interface SyncedFrame {
  type: 'synced';
  /** The last sequence of the replay; everything after it comes live. */
  seq: number;
}

export interface ErrorFrame {
  type: 'error';
  message: string;
}

export type ServerFrame = NotificationFrame | CleanFrame | HelloFrame | SyncedFrame | ErrorFrame | { type: 'pong' };

export interface Disconnection {
  code: number;
  reason: string;
}

export interface ReceiverEvents {
  hello: HelloFrame;
  notification: NotificationFrame;
  clean: CleanFrame;
  synced: SyncedFrame;
  /** The server rejected a frame of ours. */
  serverError: ErrorFrame;
  /** The connection was lost; a reconnect follows after `retryInMs`. */
  disconnected: Disconnection & { retryInMs: number };
  /** The server refused this station (close code 4400, 4401 or 4403); no reconnect follows. */
  refused: Disconnection;
}

/** Close codes after which trying again cannot help: the server refused this station. */
export const REFUSAL_CODES: ReadonlySet<number> = new Set([4400, 4401, 4403]);
