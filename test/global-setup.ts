import { build } from '../web/build.mjs';

/** Builds the web pages once before the suite, so browser tests never load a stale bundle. */
export default async function setup() {
  await build();
}
