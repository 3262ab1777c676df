import { wholeFrame, type WholeFrame } from './ws-frame.ts';

/**
 * The bytes of a frame, shared. The hub hands a user's frame to each of the user's
 * connections in a row, so the frame is made once (header and UTF-8 text, ws-frame.ts) and
 * every connection writes the same Buffer.
 *
 * HERALD_NO_FRAME_CACHE=1 turns it off (read once at load): each send makes its own copy.
 */
export const FRAME_CACHE = process.env.HERALD_NO_FRAME_CACHE !== '1';

let lastFrameText = '';
let lastFrame = wholeFrame('');

function cachedFrameBytes(frame: string): WholeFrame {
  if (frame !== lastFrameText) {
    lastFrameText = frame;
    lastFrame = wholeFrame(frame);
  }
  return lastFrame;
}

/** The whole WebSocket frame of a frame's text; with the cache on, the same one for the same text in a row. */
export const frameBytes: (frame: string) => WholeFrame = FRAME_CACHE ? cachedFrameBytes : wholeFrame;
