import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { isAdminToken, type AdminTokenHash } from '../admin-token.ts';

/** What the operator's endpoints work with. */
export interface OperationsParts {
  /** Resolves when the database answers. */
  ping(): Promise<void>;
  registry: Registry;
  /** The admin token's SHA-256. */
  adminTokenHash: AdminTokenHash;
}

/** `/healthz` for load balancers and `/metrics` for Prometheus. */
export function operationsApi(parts: OperationsParts): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', async () => {
      await parts.ping();
      return { status: 'ok' };
    });
    // The metrics tell who is busy and what fails: only the operator reads them (Prometheus
    // sends the admin token with `authorization: { credentials: … }` or `bearer_token`).
    app.get('/metrics', async (request, reply) => {
      const authorization = request.headers.authorization;
      if (!authorization?.startsWith('Bearer ') || !isAdminToken(authorization.slice(7).trim(), parts.adminTokenHash)) {
        return reply
          .status(401)
          .header('www-authenticate', 'Bearer')
          .send({ error: 'send Authorization: Bearer <admin token> to read the metrics' });
      }
      reply.header('content-type', parts.registry.contentType);
      return parts.registry.metrics();
    });
  };
}
