import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * Frames handed over in one dispatch leave in one write: a connection's TCP socket is corked
 * at its first frame and uncorked on the next tick, once the hub's dispatch loop is done, so
 * a burst costs one system call per connection, not one per frame.
 *
 * HERALD_NO_CORK=1 turns it off (read once at load): each frame is written on its own.
 */
export const CORKING = process.env.HERALD_NO_CORK !== '1';

/** A connection that can be corked: it keeps whether its socket is corked right now. */
export interface Corkable {
  readonly socket: WebSocket;
  corked: boolean;
}

function corkUntilNextTick(connection: Corkable): void {
  if (connection.corked) return;
  // ws keeps the TCP socket as _socket; it is unset before the handshake and after a terminate.
  const raw = (connection.socket as unknown as { _socket?: Duplex })._socket;
  if (!raw) return;
  connection.corked = true;
  raw.cork();
  process.nextTick(uncork, connection, raw);
}

function uncork(connection: Corkable, raw: Duplex): void {
  connection.corked = false;
  raw.uncork();
}

function leaveUncorked(): void {}

/** Corks the connection's socket until the current dispatch is over (a no-op with HERALD_NO_CORK=1). */
export const corkDispatch: (connection: Corkable) => void = CORKING ? corkUntilNextTick : leaveUncorked;
