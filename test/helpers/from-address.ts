import http from 'node:http';

export interface PlainAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: any;
}

/**
 * One HTTP request from a chosen loopback source address (127.0.0.2, …), so a test can stand
 * for several clients whose addresses are limited apart.
 */
export function requestFrom(
  localAddress: string,
  url: string,
  { method = 'POST', headers = {}, body }: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<PlainAnswer> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method,
        localAddress,
        agent: false,
        headers: {
          ...(text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
          ...headers,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          resolve({ status: response.statusCode ?? 0, headers: response.headers, json: raw === '' ? undefined : JSON.parse(raw) });
        });
      },
    );
    request.on('error', reject);
    request.end(text);
  });
}
