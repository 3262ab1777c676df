import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { errorCodes, type FastifyReply, type FastifyRequest, type RequestPayload } from 'fastify';

/*
 * A body over HERALD_BODY_LIMIT is answered 413 only once the client has finished sending
 * it, up to a bound. Answering at once (Fastify's way) closes the connection while the
 * client is still uploading; the bytes that keep arriving at a closed socket make the
 * server's TCP stack reset the connection, and most clients then report the reset rather
 * than the 413 they were already sent.
 */

/** Bytes of an oversized body read and thrown away before answering: twice the limit, at least 8 MiB. */
export function drainBound(bodyLimit: number): number {
  return Math.max(2 * bodyLimit, 8 * 1024 * 1024);
}

/** Each API renders this as its own 413 (the Ozeki API with the limit in its message). */
const tooLarge = () => new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE();

/** Reads and discards a request body; resolves when it has ended, or the request is gone. */
function discard(body: Readable): Promise<void> {
  return new Promise((resolve) => {
    body.on('end', resolve);
    body.on('close', resolve);
    body.on('error', () => resolve());
    body.resume();
  });
}

/** Passes a chunked body on up to the limit; past it, discards the rest (up to the bound) and then fails. */
class OversizeDrain extends Transform {
  private received = 0;

  constructor(
    private readonly limit: number,
    private readonly bound: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.received += chunk.length;
    if (this.received <= this.limit) done(null, chunk);
    else if (this.received > this.bound) done(tooLarge());
    else done();
  }

  override _flush(done: TransformCallback): void {
    done(this.received > this.limit ? tooLarge() : undefined);
  }
}

/**
 * A preParsing hook for the whole server. A declared Content-Length over the limit (and
 * within the bound) is read to its end and then refused; a chunked body is counted as it
 * comes. Node's request timeout still bounds how long either may take.
 */
export function drainOversizedBodies(bodyLimit: number) {
  const bound = drainBound(bodyLimit);
  return async (request: FastifyRequest, reply: FastifyReply, payload: RequestPayload): Promise<RequestPayload> => {
    const declared = Number(request.headers['content-length']);
    if (declared > bodyLimit) {
      // Beyond the bound the client is still sending when the answer goes; either way the
      // connection closes after it, as for every refused body.
      if (declared <= bound) await discard(payload);
      reply.header('connection', 'close');
      throw tooLarge();
    }
    if (request.headers['transfer-encoding'] === undefined) return payload;
    const drain = new OversizeDrain(bodyLimit, bound);
    pipeline(payload, drain, () => undefined);
    return drain;
  };
}
