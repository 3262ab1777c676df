import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Config } from './config.ts';
import { writePrivateFile } from './files.ts';

export interface TlsPair {
  cert: string;
  key: string;
  /** True when the self-signed pair was made by this call. */
  generated: boolean;
  /** Where the certificate is: what a client passes to curl's --cacert to trust it. */
  certFile: string;
}

/** The names a generated certificate holds: loopback, and HERALD_PUBLIC_HOST (a DNS name or an IP address). */
function altNames(publicHost: string | undefined) {
  const names: Array<{ type: 2; value: string } | { type: 7; ip: string }> = [
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
    { type: 7, ip: '::1' },
  ];
  const host = publicHost?.replace(/^\[|\]$/g, '');
  if (host && host !== 'localhost' && host !== '127.0.0.1' && host !== '::1') {
    names.push(net.isIP(host) !== 0 ? { type: 7, ip: host } : { type: 2, value: host });
  }
  return names;
}

/**
 * The configured PEM pair, or a self-signed one made once into the data directory (its key
 * owner-only), naming loopback and HERALD_PUBLIC_HOST.
 */
export async function loadTls(config: Config): Promise<TlsPair> {
  if (config.tlsCert && config.tlsKey) {
    const cert = fs.readFileSync(config.tlsCert, 'utf8');
    return { cert, key: fs.readFileSync(config.tlsKey, 'utf8'), generated: false, certFile: config.tlsCert };
  }
  const certFile = path.join(config.dataDir, 'tls-cert.pem');
  const keyFile = path.join(config.dataDir, 'tls-key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8'), generated: false, certFile };
  }
  // Loaded only here: the certificate library is a tenth of a second of every start otherwise.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: config.publicHost ?? 'localhost' }], {
    notAfterDate: new Date(Date.now() + 3650 * 24 * 3600 * 1000),
    keyType: 'ec',
    curve: 'P-256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: altNames(config.publicHost),
      },
    ],
  });
  writePrivateFile(keyFile, pems.private);
  fs.writeFileSync(certFile, pems.cert);
  return { cert: pems.cert, key: pems.private, generated: true, certFile };
}

/** The SHA-256 fingerprint of a PEM certificate (the first one of a chain), as browsers show it: `AB:CD:…`. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
