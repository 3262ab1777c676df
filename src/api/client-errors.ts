import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { apiOf } from './unmatched.ts';

/*
 * Requests Node refuses before Fastify sees them (a request that took too long, headers or a
 * request line too large, bytes that are not HTTP) are answered here, in the error shape of
 * the API their path belongs to. A path that cannot be read gets the Ozeki shape: `/` is
 * the Ozeki Chat API's.
 */

interface ClientError extends Error {
  code?: string;
  /** The bytes the parser was reading when it failed (parse errors only). */
  rawPacket?: unknown;
}

function packetOf(error: ClientError): Buffer | undefined {
  return Buffer.isBuffer(error.rawPacket) ? error.rawPacket : undefined;
}

/** The request line of the bytes, when they start with one (undefined when it has not ended). */
function requestLine(packet: Buffer | undefined): string | undefined {
  if (!packet) return undefined;
  const end = packet.indexOf('\n');
  return packet.toString('latin1', 0, end === -1 ? packet.length : end);
}

function pathOf(error: ClientError, socket: Duplex): string {
  // Headers complete (a body that trickles in): the request Node already made has the URL.
  const request = (socket as { _httpMessage?: { req?: { url?: string } } })._httpMessage?.req;
  const url = request?.url ?? /^[A-Z]+ (\S+)/.exec(requestLine(packetOf(error)) ?? '')?.[1];
  if (!url || !url.startsWith('/')) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function refusalOf(error: ClientError, requestTimeoutMs: number): { status: number; message: string } {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, message: `the request did not arrive in full within ${requestTimeoutMs} ms` };
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    // Node counts the request line with the headers; a line that alone is that long is the URL.
    const packet = packetOf(error);
    const line = requestLine(packet);
    if (line !== undefined && (line.length >= maxHeaderSize || !packet!.includes('\n'))) {
      return { status: 414, message: `the request line is longer than ${maxHeaderSize} bytes` };
    }
    return { status: 431, message: `the request headers are larger than ${maxHeaderSize} bytes` };
  }
  return { status: 400, message: 'malformed HTTP request' };
}

/** Fastify's clientErrorHandler: answers once, in the API's shape, and closes the connection. */
export function clientErrorHandler(requestTimeoutMs: number) {
  return (error: ClientError, socket: Duplex): void => {
    // A reset connection has nobody to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const { status, message } = refusalOf(error, requestTimeoutMs);
    const body = JSON.stringify(apiOf(pathOf(error, socket)).body(status, message));
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(error);
  };
}
