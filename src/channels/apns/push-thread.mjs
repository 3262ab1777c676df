// The entry of a push channel's worker thread (see thread.ts) when Herald runs from its
// TypeScript sources (tests, tsx): a worker loads its modules on its own, so it registers
// tsx as the main thread did. The compiled build starts push-thread-body.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./push-thread-body.ts');
