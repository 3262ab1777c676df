import http2 from 'node:http2';

/**
 * Every stream's options, with the priority fields node:http2 would otherwise fill in
 * itself (its defaults: weight 16, no parent, not exclusive, not silent). session.request
 * copies the options and sets each missing field on the copy, which cost about 10 µs of
 * CPU per request here; given, they are only checked.
 */
const PREFILLED = Object.freeze({
  endStream: false,
  weight: http2.constants.NGHTTP2_DEFAULT_WEIGHT,
  parent: 0,
  exclusive: false,
  silent: false,
}) as http2.ClientSessionRequestOptions;

/** Only what a push needs said: its body follows the headers. */
const PLAIN = Object.freeze({ endStream: false }) as http2.ClientSessionRequestOptions;

/**
 * The options every APNs stream is opened with: the prefilled ones, or only `endStream`
 * with HERALD_NO_PREFILLED_STREAM_OPTIONS=1 (node:http2 then fills in the same defaults
 * itself, on every request). Both open the same stream.
 */
export function streamOptions(env: NodeJS.ProcessEnv = process.env): http2.ClientSessionRequestOptions {
  return env.HERALD_NO_PREFILLED_STREAM_OPTIONS === '1' ? PLAIN : PREFILLED;
}
