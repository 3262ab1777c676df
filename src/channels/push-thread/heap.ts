import type { ResourceLimits } from 'node:worker_threads';

/**
 * A push's objects (its stream, node:http2's own, the request) live for one round trip, but
 * thousands are in flight at once and each scavenge copies those. A young generation larger
 * than V8's default makes scavenges rarer. APNs push-only runs, the process's CPU per push
 * over the bare client's (medians of 8 alternating runs): default 1.15×, 96 MB 1.09×
 * (pushes/s over @parse/node-apn 1.13× → 1.24×); then 96 MB 1.13× against 192 MB 1.05×
 * (1.16× → 1.21×). It grows to this size only under such load; the semi-spaces are then
 * 64 MB each.
 */
const YOUNG_GENERATION_MB = 192;

/**
 * The heap limits of a push thread (APNs, FCM): a 192 MB young generation, or V8's defaults
 * with HERALD_NO_LARGE_YOUNG_GENERATION=1 (up to ~200 MB less memory per thread under a
 * push storm, more CPU per push).
 */
export function pushThreadResourceLimits(env: NodeJS.ProcessEnv = process.env): ResourceLimits | undefined {
  if (env.HERALD_NO_LARGE_YOUNG_GENERATION === '1') return undefined;
  return { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB };
}
