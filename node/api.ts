/**
 * The SDK-facing HTTP API (fastify): a JSON schema per route (node/api-types.ts), API keys in the
 * Authorization header (node/tenants.ts: each key belongs to exactly one tenant, the only source of a
 * request's tenant), one error handler, and logs with secrets redacted.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ErrorCode, isTesseraError } from '../core/errors.js';
import {
  ROUTES,
  type CreateApiKeyRequest,
  type DecapsulateRequest,
  type ExportRequest,
  type ImportRequest,
  type KeygenRequest,
  type RefreshRequest,
  type RotateRequest,
  type SetStateRequest,
  type SignRequest,
  type VerifyRequest,
} from './api-types.js';
import type { NodeAdmin } from './admin.js';
import type { NodeService } from './service.js';
import type { Principal } from './tenants.js';

export interface ApiOptions {
  service: NodeService;
  admin: NodeAdmin;
  /** Who holds a presented API key (node/tenants.ts TenantStore.authenticate). */
  authenticate: (presentedKey: string) => Principal | undefined;
  logger: Logger;
  tls?: { cert: string | Buffer; key: string | Buffer };
}

const STATUS: Record<string, number> = {
  [ErrorCode.NotFound]: 404,
  [ErrorCode.AlreadyExists]: 409,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.PolicyDenied]: 403,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.SessionAborted]: 409,
};

/** HTTP status for a TesseraError code: client mistakes 400, protocol failures 502 (another node misbehaved). */
export function statusFor(code: string): number {
  if (code in STATUS) return STATUS[code]!;
  if (['BAD_PROOF', 'BAD_SHARE', 'BAD_SIGNATURE_SHARE', 'EQUIVOCATION', 'CONFIRMATION_MISMATCH', 'VERIFICATION_FAILED', 'EPOCH_MISMATCH', 'DECRYPTION_FAILED'].includes(code)) {
    return 502;
  }
  return 400;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export async function buildApi(o: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: o.logger.child({ component: 'api' }),
    bodyLimit: 4 * 1024 * 1024,
    // Unknown fields are refused, not silently dropped (fastify's default removeAdditional would let
    // a typo such as "exportible" pass as if it had not been sent). Query strings still need coercion.
    ajv: { customOptions: { removeAdditional: false, useDefaults: false, coerceTypes: 'array' } },
    ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key } } : {}),
  } as never) as unknown as FastifyInstance;

  // Unknown routes answer in the same error shape as everything else.
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: ErrorCode.NotFound, message: `no route ${req.method} ${req.url.split('?')[0]}` }));

  const authenticate = async (req: FastifyRequest) => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer ([\x21-\x7e]{8,256})$/.exec(h) : null;
    if (!m) throw Object.assign(new Error('missing or malformed API key'), { code: ErrorCode.Unauthorized });
    const principal = o.authenticate(m[1]!);
    if (!principal) throw Object.assign(new Error('unknown API key'), { code: ErrorCode.Unauthorized });
    // The tenant comes only from the API key, never from the request.
    req.principal = principal;
  };
  const who = (req: FastifyRequest): Principal => req.principal!;
  const keyIdOf = (req: FastifyRequest): string => (req.params as { keyId: string }).keyId;

  app.setErrorHandler((err: any, req: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) {
      return reply.status(400).send({ code: ErrorCode.BadInput, message: `invalid request: ${err.message}` });
    }
    if (isTesseraError(err)) {
      const body: Record<string, unknown> = { code: err.code, message: err.message };
      if (err.culprits.length) body.culprits = [...err.culprits];
      if (Array.isArray((err as any).nodes)) body.nodes = (err as any).nodes;
      return reply.status(statusFor(err.code)).send(body);
    }
    if (err.code === ErrorCode.Unauthorized) return reply.status(401).send({ code: err.code, message: err.message });
    if (typeof err.statusCode === 'number' && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ code: ErrorCode.BadInput, message: err.message });
    }
    req.log.error({ err: { message: err.message, name: err.name } }, 'unexpected error');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error' });
  });

  // Authenticate in onRequest, before the body is read or validated: a caller without a valid API key
  // gets 401 and nothing else (no schema errors, no body parsing, no hint which routes exist). This
  // covers every route but the liveness/readiness probes, including routes added later.
  const probes = new Set<string>([ROUTES.health.url, ROUTES.ready.url]);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!probes.has(req.routeOptions.url ?? '')) await authenticate(req);
  });

  const s = o.service;
  app.route({ ...ROUTES.health, handler: async () => ({ status: 'ok' }) });
  app.route({
    ...ROUTES.ready,
    handler: async (_req, reply) =>
      s.info().ready ? { ready: true } : reply.status(503).send({ code: ErrorCode.Unavailable, message: 'not connected to the coordinator' }),
  });
  app.route({ ...ROUTES.node, handler: async () => s.info() });
  app.route({ ...ROUTES.keygen, handler: async (req) => s.keygen(who(req), req.body as KeygenRequest) });
  app.route({ ...ROUTES.getKey, handler: async (req) => s.getKey(who(req), keyIdOf(req), (req.query as { version?: number }).version) });
  app.route({ ...ROUTES.sign, handler: async (req) => s.sign(who(req), keyIdOf(req), req.body as SignRequest) });
  app.route({ ...ROUTES.verify, handler: async (req) => s.verify(who(req), keyIdOf(req), req.body as VerifyRequest) });
  app.route({ ...ROUTES.decapsulate, handler: async (req) => s.decapsulate(who(req), keyIdOf(req), req.body as DecapsulateRequest) });
  app.route({ ...ROUTES.refresh, handler: async (req) => s.refresh(who(req), keyIdOf(req), req.body as RefreshRequest) });
  app.route({ ...ROUTES.exportKey, handler: async (req) => s.exportKey(who(req), keyIdOf(req), req.body as ExportRequest) });
  app.route({ ...ROUTES.importKey, handler: async (req) => s.importKey(who(req), req.body as ImportRequest) });
  app.route({ ...ROUTES.rotate, handler: async (req) => s.rotate(who(req), keyIdOf(req), req.body as RotateRequest) });
  app.route({ ...ROUTES.setState, handler: async (req) => s.setState(who(req), keyIdOf(req), req.body as SetStateRequest) });
  app.route({ ...ROUTES.decline, handler: async (req) => s.decline((req.body as { sessionId: string }).sessionId) });

  // Administration: admin API keys only (node/admin.ts checks the role).
  const a = o.admin;
  app.route({ ...ROUTES.createTenant, handler: async (req) => a.createTenant(who(req), (req.body as { name: string }).name) });
  app.route({ ...ROUTES.createApiKey, handler: async (req) => a.createApiKey(who(req), req.body as CreateApiKeyRequest) });
  app.route({ ...ROUTES.listApiKeys, handler: async (req) => a.listApiKeys(who(req), (req.query as { tenant?: string }).tenant) });
  app.route({ ...ROUTES.revokeApiKey, handler: async (req) => a.revokeApiKey(who(req), (req.params as { id: string }).id) });
  app.route({ ...ROUTES.getPolicy, handler: async (req) => a.getPolicy(who(req)) });
  app.route({ ...ROUTES.setPolicy, handler: async (req) => a.setPolicy(who(req), (req.body as { rules: unknown[] }).rules) });
  app.route({ ...ROUTES.enableFailOpen, handler: async (req) => a.enableFailOpen(who(req), (req.body as { durationMs?: number } | undefined)?.durationMs) });
  app.route({ ...ROUTES.disableFailOpen, handler: async (req) => a.disableFailOpen(who(req)) });
  app.route({ ...ROUTES.auditLog, handler: async (req) => a.exportAudit(who(req)) });
  return app;
}
