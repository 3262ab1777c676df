/**
 * The bytes of a frame, shared. The hub hands a user's frame to each of the user's
 * connections in a row, so the text is encoded once and every connection sends the same
 * Buffer (ws sends a Buffer as it is; a string it would encode again for each socket).
 *
 * HERALD_NO_FRAME_CACHE=1 turns it off (read once at load): each send encodes its own copy.
 */
export const FRAME_CACHE = process.env.HERALD_NO_FRAME_CACHE !== '1';

let lastFrameText = '';
let lastFrameBytes = Buffer.alloc(0);

function cachedFrameBytes(frame: string): Buffer {
  if (frame !== lastFrameText) {
    lastFrameText = frame;
    lastFrameBytes = Buffer.from(frame);
  }
  return lastFrameBytes;
}

function freshFrameBytes(frame: string): Buffer {
  return Buffer.from(frame);
}

/** The UTF-8 bytes of a frame's text; with the cache on, the same Buffer for the same text in a row. */
export const frameBytes: (frame: string) => Buffer = FRAME_CACHE ? cachedFrameBytes : freshFrameBytes;
