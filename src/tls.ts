import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';

/** The configured PEM pair, or a self-signed one made once into the data directory. */
export async function loadTls(config: Config): Promise<{ cert: string; key: string; generated: boolean }> {
  if (config.tlsCert && config.tlsKey) {
    return { cert: fs.readFileSync(config.tlsCert, 'utf8'), key: fs.readFileSync(config.tlsKey, 'utf8'), generated: false };
  }
  const certFile = path.join(config.dataDir, 'tls-cert.pem');
  const keyFile = path.join(config.dataDir, 'tls-key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8'), generated: false };
  }
  // Loaded only here: the certificate library is a tenth of a second of every start otherwise.
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    notAfterDate: new Date(Date.now() + 3650 * 24 * 3600 * 1000),
    keyType: 'ec',
    curve: 'P-256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  fs.mkdirSync(config.dataDir, { recursive: true });
  fs.writeFileSync(keyFile, pems.private, { mode: 0o600 });
  fs.writeFileSync(certFile, pems.cert);
  return { cert: pems.cert, key: pems.private, generated: true };
}
