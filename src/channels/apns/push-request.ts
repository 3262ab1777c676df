import http2 from 'node:http2';
import type { SendOutcome } from '../../model/channel.ts';
import type { ApnsConnection } from './connection.ts';
import type { PreparedPush } from './payload.ts';

/** A stream refused by GOAWAY or a lost connection: the push was not processed and may be sent again. */
export class ConnectionLost extends Error {}

/** What a push's stream tells the channel that sent it. */
export interface RequestOwner {
  /** The stream ended: its answer (status, headers, body) is complete. */
  streamEnded(request: PushRequest): void;
  /** The stream failed or was closed before its answer. */
  finish(request: PushRequest, error: Error): void;
}

/** Where a stream's listeners find the push it carries. */
const PUSH_REQUEST = Symbol('apns push request');
export type PushStream = http2.ClientHttp2Stream & { [PUSH_REQUEST]?: PushRequest };

/**
 * One push on its way, from the queue through its stream to its answer. Thousands are in
 * flight at once, so a push carries its state in this one object: the stream's listeners
 * are shared functions (below) that find it through the stream, and a push costs no
 * closure per event and no promise at all.
 */
export class PushRequest {
  stream: PushStream | undefined = undefined;
  connection: ApnsConnection | undefined = undefined;
  status = 0;
  responseHeaders: http2.IncomingHttpHeaders | undefined = undefined;
  body: Buffer[] | undefined = undefined;
  startedAt = 0;
  /** Streams this push was put on (a stream refused by GOAWAY is sent again on a new connection). */
  attempts = 0;
  settled = false;
  /** The provider token was refused as expired once, and a new one tried. */
  resigned = false;

  constructor(
    readonly owner: RequestOwner,
    readonly path: string,
    readonly push: PreparedPush,
    readonly context: unknown,
    /**
     * Called once, with the outcome and `context`. The context's type is the sender's own
     * (PushChannel.send is generic over it), so it is handed back `as never`.
     */
    readonly done: (outcome: SendOutcome, context: never) => void,
  ) {}

  /** Puts the push on `stream` and listens for its answer. */
  listen(stream: PushStream): void {
    stream[PUSH_REQUEST] = this;
    this.stream = stream;
    stream.on('response', onResponse);
    stream.on('error', onError);
    stream.on('close', onClose);
  }
}

function onResponse(this: PushStream, headers: http2.IncomingHttpHeaders, flags: number): void {
  const request = this[PUSH_REQUEST];
  if (request?.stream !== this) return;
  request.responseHeaders = headers;
  request.status = Number(headers[':status']);
  // APNs answers a push it accepts with headers alone (END_STREAM set on them); only an
  // answer with a body (the reason) needs reading. A stream nobody reads still ends once
  // its last frame has come, so an empty one needs no 'data' listener.
  if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0) this.on('data', onData);
}

function onData(this: PushStream, chunk: Buffer): void {
  const request = this[PUSH_REQUEST];
  if (request?.stream !== this) return;
  (request.body ??= []).push(chunk);
}

function onError(this: PushStream, error: Error): void {
  const request = this[PUSH_REQUEST];
  // A stream refused by GOAWAY or a closed session was never processed: send it again.
  if (request?.stream === this) request.owner.finish(request, new ConnectionLost(error.message));
}

/**
 * A stream closes once its answer has been read to the end (or it failed): the one place
 * a push learns that it is done, which spares an 'end' listener per stream.
 */
function onClose(this: PushStream): void {
  const request = this[PUSH_REQUEST];
  if (request?.stream !== this || request.settled) return;
  if (this.readableEnded) request.owner.streamEnded(request);
  else request.owner.finish(request, new ConnectionLost(`stream closed with code ${this.rstCode}`));
}
