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

/**
 * The sockets corked since the last uncork, with their connections, and one tick that uncorks
 * them all: a fan-out corks thousands of sockets in one dispatch, and a tick of its own per
 * socket made an object and an argument list per delivery.
 */
const corkedConnections: Corkable[] = [];
const corkedSockets: Duplex[] = [];

function corkUntilNextTick(connection: Corkable): void {
  if (connection.corked) return;
  // ws keeps the TCP socket as _socket; it is unset before the handshake and after a terminate.
  const raw = (connection.socket as unknown as { _socket?: Duplex })._socket;
  if (!raw) return;
  connection.corked = true;
  raw.cork();
  if (corkedSockets.push(raw) === 1) process.nextTick(uncorkAll);
  corkedConnections.push(connection);
}

function uncorkAll(): void {
  // Taken first: an uncork may run code that corks again, for the next tick.
  const connections = corkedConnections.splice(0);
  const sockets = corkedSockets.splice(0);
  for (let i = 0; i < sockets.length; i++) {
    connections[i].corked = false;
    sockets[i].uncork();
  }
}

function leaveUncorked(): void {}

/** Corks the connection's socket until the current dispatch is over (a no-op with HERALD_NO_CORK=1). */
export const corkDispatch: (connection: Corkable) => void = CORKING ? corkUntilNextTick : leaveUncorked;
