import path from 'node:path';
import type { Config } from './config.ts';

/*
 * The few lines a person starting Herald on a terminal wants: where it listens, where the
 * admin token is, and how to trust its certificate. The JSON log line 'Herald is listening'
 * says the same for tools; the banner goes to standard error so standard output stays JSON lines.
 */

export interface BannerFacts {
  config: Pick<Config, 'dataDir' | 'adminToken'>;
  endpoints: { http: string; https: string; ws: string; wss: string; udp: string };
  tls: { certFile: string; fingerprint: string };
}

/** Whether to print the banner: HERALD_BANNER decides; unset, only when standard error is a terminal. */
export function wantsBanner(config: Pick<Config, 'banner'>, stream: { isTTY?: boolean } = process.stderr): boolean {
  return config.banner ?? stream.isTTY === true;
}

/** A path as short as it can be said from here: relative when below the working directory. */
function shortPath(file: string, cwd: string): string {
  const relative = path.relative(cwd, file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

export function banner({ config, endpoints, tls }: BannerFacts, cwd = process.cwd()): string {
  const certFile = shortPath(tls.certFile, cwd);
  // Only a hash of a generated token is kept: the token itself was shown once, at first start.
  const token =
    config.adminToken === undefined
      ? `shown once at first start (its hash: ${shortPath(path.join(config.dataDir, 'admin-token.sha256'), cwd)}; herald admin-token reset makes a new one)`
      : 'from HERALD_ADMIN_TOKEN';
  return [
    'Herald is listening:',
    `  HTTP   ${endpoints.http}   WebSocket ${endpoints.ws}`,
    `  HTTPS  ${endpoints.https}   WebSocket ${endpoints.wss}`,
    `  UDP    ${endpoints.udp}`,
    `  Admin token: ${token}`,
    `  TLS certificate: ${certFile}`,
    `    SHA-256 fingerprint ${tls.fingerprint}`,
    `    trust it with: curl --cacert ${certFile} ${endpoints.https}/healthz`,
    '',
  ].join('\n');
}
