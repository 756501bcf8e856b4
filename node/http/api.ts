/**
 * The SDK-facing HTTP API (fastify): a JSON schema per route (contract/http.ts), API keys in the
 * Authorization header (node/governance/tenants.ts: each key belongs to exactly one tenant, the only source of a
 * request's tenant), one error handler, and logs with secrets redacted.
 */
import { MEMBERSHIP_TENANT } from '../../core/membership.js';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import { ErrorCode, TesseraError, isTesseraError } from '../../core/errors.js';
import { toHex } from '../../core/bytes.js';
import { encodeEvidence } from '../../core/evidence.js';
import { MAX_VERSION, ROUTES, errorSchema, type StagedAttestResponse, type StagedDropResponse, type StagedReleaseResponse } from '../../contract/http.js';
import { metricsTokenMatcher } from '../../runtime/metrics.js';
import { registerOpenApi } from '../../runtime/openapi.js';
import { STRICT_AJV_OPTIONS, addResponseCheck, responseCheckEnabled } from '../../runtime/response-check.js';
import { packageVersion } from '../../runtime/package-info.js';
import type { NodeAdmin } from '../governance/admin.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeService } from '../service.js';
import { ACT_AS_TENANT_HEADER } from '../../contract/http.js';
import { TENANT_ID_PATTERN, requireAdmin, type Principal } from '../governance/tenants.js';
import { CONSOLE_STATIC_URLS } from '../../contract/console.js';
import { registerConsole } from './console.js';
import { UNSEAL_URLS, registerUnsealRoutes, type UnsealApi } from './unseal.js';

/** The routes an admin may call acting for MEMBERSHIP_TENANT: a membership change's commit status and repair. */
const CLUSTER_REPAIR_ROUTES = new Set<string>([ROUTES.commitStatus.url, ROUTES.attestStaged.url, ROUTES.releaseVote.url, ROUTES.dropStaged.url, ROUTES.repair.url]);

export interface ApiOptions {
  service: NodeService;
  admin: NodeAdmin;
  /** Who holds a presented API key (node/governance/tenants.ts TenantStore.authenticate). */
  authenticate: (presentedKey: string) => Principal | undefined;
  logger: Logger;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Set when the node cannot serve at all (its store latched failed: ShareStore.failure): every route but /health answers it (503). */
  unavailable?: () => Error | undefined;
  /** What GET /metrics serves (node/metrics.ts); without it the route answers UNAVAILABLE. */
  metrics?: NodeMetrics;
  /** A bearer token that reads GET /metrics besides admin API keys (node/config.ts metricsToken). */
  metricsToken?: string;
  /** Check every JSON response against its route's schema (runtime/response-check.ts). Default: TESSERA_CHECK_RESPONSES=1 (tests). */
  checkResponses?: boolean;
  /** The unseal routes' node (node/http/unseal.ts); without it they answer UNAVAILABLE. */
  unseal?: UnsealApi;
}

const STATUS: Record<string, number> = {
  [ErrorCode.NotFound]: 404,
  [ErrorCode.AlreadyExists]: 409,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.PolicyDenied]: 403,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.SessionAborted]: 409,
  // A presignature that cannot be used (node/presign/): the SDK falls back to two-round signing.
  [ErrorCode.PresignatureUnavailable]: 409,
};

/** HTTP status for a TesseraError code: client mistakes 400, protocol failures 502 (another node misbehaved). */
export function statusFor(code: string): number {
  if (code in STATUS) return STATUS[code]!;
  if (['BAD_PROOF', 'BAD_SHARE', 'BAD_SIGNATURE_SHARE', 'EQUIVOCATION', 'CONFIRMATION_MISMATCH', 'VERIFICATION_FAILED', 'EPOCH_MISMATCH', 'DECRYPTION_FAILED'].includes(code)) {
    return 502;
  }
  return 400;
}

/**
 * An integer given as text (a query string or path parameter): plain decimal digits, no sign, exponent,
 * fraction, spaces or leading zeros, within min..max. Anything else is BAD_INPUT naming the field.
 */
export function parseDecimal(field: string, text: string, min: number, max: number): number {
  const value = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TesseraError(ErrorCode.BadInput, `${field}: expected an integer from ${min} to ${max} in plain decimal digits`);
  }
  return value;
}

/** One schema error as the validator reports it (ajv, verbose). */
interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  parentSchema?: Record<string, unknown>;
  data?: unknown;
}

/** What the request part a validation context names is called in messages. */
const CONTEXT_NAMES: Record<string, string> = { body: 'body', querystring: 'query string', params: 'path', headers: 'headers' };

/**
 * The first schema error of a request in words: "<field>: expected <what the field is>", naming the
 * field by its path (e.g. "players[0]", "bundle.wrappedShares[1].enc") and never the validator's own
 * wording or the value sent (it could be secret); only the kind of value is said ("got null").
 */
export function describeValidationError(errors: readonly SchemaError[], context: string | undefined): string {
  const e = errors[0];
  const where = CONTEXT_NAMES[context ?? ''] ?? 'request';
  if (!e) return `${where}: invalid`;
  const path = fieldPath(e.instancePath);
  const field = (name: string) => (path ? `${path}.${name}` : name);
  const schema = e.parentSchema ?? {};
  switch (e.keyword) {
    case 'required': {
      const name = printable(String(e.params.missingProperty));
      const property = (schema.properties as Record<string, Record<string, unknown>> | undefined)?.[name];
      return `${field(name)}: missing; expected ${property ? describeSchema(property) : 'a value'}`;
    }
    case 'additionalProperties': {
      const known = Object.keys((schema.properties as object | undefined) ?? {});
      return `${field(printable(String(e.params.additionalProperty)))}: unknown field${known.length ? ` (known: ${known.join(', ')})` : ''}`;
    }
    case 'minItems':
    case 'maxItems':
      return `${path || where}: expected ${describeSchema(schema)} (got ${Array.isArray(e.data) ? e.data.length : 'another number'})`;
    case 'uniqueItems':
      return `${path || where}: expected ${describeSchema(schema)} (got a duplicate)`;
    case 'type':
      return `${path || where}: expected ${describeSchema(schema)} (got ${kindOf(e.data)})`;
    default:
      return `${path || where}: expected ${describeSchema(schema)}`;
  }
}

/** "/bundle/wrappedShares/1/enc" -> "bundle.wrappedShares[1].enc" (JSON pointer, unescaped, printable). */
function fieldPath(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((out, p) => (/^[0-9]+$/.test(p) ? `${out}[${p}]` : out ? `${out}.${printable(p)}` : printable(p)), '');
}

/** A caller-chosen name fit for a message: printable ASCII, at most 64 characters. */
function printable(name: string): string {
  const clean = name.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}

/** A schema in words: its description, else its type and bounds. */
function describeSchema(schema: Record<string, unknown>): string {
  if (typeof schema.description === 'string') return schema.description;
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  const bounds = typeof schema.minimum === 'number' && typeof schema.maximum === 'number' ? ` from ${schema.minimum} to ${schema.maximum}` : '';
  switch (schema.type) {
    case 'object':
      return 'a JSON object';
    case 'array':
      return 'a list';
    case 'integer':
      return `an integer${bounds}`;
    case 'number':
      return `a number${bounds}`;
    case 'boolean':
      return 'true or false (a JSON boolean)';
    case 'string':
      return 'a string';
    default:
      return 'a valid value';
  }
}

/** The kind of a value, never the value itself. */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a fractional number';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'object') return 'an object';
  return 'nothing';
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export async function buildApi(o: ApiOptions): Promise<FastifyInstance> {
  const app = (Fastify({
    loggerInstance: o.logger.child({ component: 'api' }),
    bodyLimit: 4 * 1024 * 1024,
    // Strict: unknown fields are refused, not silently dropped (fastify's default removeAdditional would
    // let a typo such as "exportible" pass as if it had not been sent), and nothing is coerced (null,
    // 123456 or ["ab"] are not hex, "true" is not a boolean). Query strings are text, parsed explicitly
    // (parseDecimal). verbose: the failing schema comes with each error, for describeValidationError.
    // The same options check responses under TESSERA_CHECK_RESPONSES (runtime/response-check.ts).
    ajv: { customOptions: STRICT_AJV_OPTIONS },
    ...(o.tls ? { https: { cert: o.tls.cert, key: o.tls.key } } : {}),
  } as never) as unknown as FastifyInstance).withTypeProvider<TypeBoxTypeProvider>();
  // Tests only (TESSERA_CHECK_RESPONSES=1): every JSON response is checked against its route's schema.
  if (o.checkResponses ?? responseCheckEnabled()) addResponseCheck(app);
  // GET /openapi.json, generated from every route registered below (runtime/openapi.ts). It needs an API
  // key like every other route (the auth hook below): an unauthenticated caller learns no route; the
  // same document is public in docs/openapi.json.
  await registerOpenApi(app, {
    title: 'Tessera node API',
    description: 'The API of one Tessera node (contract/http.ts). Bytes are lowercase hex. Errors are { code, message }.',
    version: packageVersion(),
    publicUrls: [ROUTES.health.url, ROUTES.ready.url],
    bearerDescription: "An API key (Authorization: Bearer <key>); an admin key for /v1/admin/*. GET /metrics also takes the node's metrics token.",
    operationIds: new Map(Object.entries(ROUTES).map(([name, r]) => [`${r.method} ${r.url}`, name])),
    errorResponses: { '4xx': errorSchema, '5xx': errorSchema },
  });

  // Unknown routes answer in the same error shape as everything else.
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: ErrorCode.NotFound, message: `no route ${req.method} ${req.url.split('?')[0]}` }));

  /** The token of an "Authorization: Bearer <token>" header, if well formed. */
  const bearer = (req: FastifyRequest): string | undefined => {
    const h = req.headers.authorization;
    return (typeof h === 'string' ? /^Bearer ([\x21-\x7e]{8,256})$/.exec(h) : null)?.[1];
  };
  const authenticate = async (req: FastifyRequest) => {
    const presented = bearer(req);
    if (presented === undefined) throw Object.assign(new Error('missing or malformed API key'), { code: ErrorCode.Unauthorized });
    const principal = o.authenticate(presented);
    if (!principal) throw Object.assign(new Error('unknown API key'), { code: ErrorCode.Unauthorized });
    // The tenant comes only from the API key, never from the request; except that an admin key may name
    // a tenant of its node to act for (contract ACT_AS_TENANT_HEADER: a membership change reshares every
    // tenant's keys). That tenant's policy still decides, and the audit names the admin key.
    const actAs = req.headers[ACT_AS_TENANT_HEADER];
    if (actAs !== undefined) {
      if (typeof actAs !== 'string' || !TENANT_ID_PATTERN.test(actAs)) throw new TesseraError(ErrorCode.BadInput, `${ACT_AS_TENANT_HEADER}: expected one tenant name`);
      if (principal.role !== 'admin') throw new TesseraError(ErrorCode.PolicyDenied, `${ACT_AS_TENANT_HEADER}: only an admin API key may act for a tenant`);
      if (actAs === MEMBERSHIP_TENANT) {
        // The cluster's own namespace holds only membership changes: an admin reaches it for the staged-change
        // repair a crash mid-change may need (Cluster.repair of key id 'membership'), and for nothing else.
        if (!CLUSTER_REPAIR_ROUTES.has(req.routeOptions.url ?? '')) throw new TesseraError(ErrorCode.PolicyDenied, `${ACT_AS_TENANT_HEADER}: ${MEMBERSHIP_TENANT} is only for repairing a membership change`);
      } else if (!(await o.admin.hasTenant(actAs))) throw new TesseraError(ErrorCode.NotFound, `tenant ${actAs} not found`);
      req.principal = { ...principal, tenant: actAs };
      return;
    }
    req.principal = principal;
  };
  // GET /metrics: the metrics token (runtime/metrics.ts metricsTokenMatcher, as on the coordinator),
  // else an admin API key (a tenant key is refused: 403).
  const metricsTokenMatches = metricsTokenMatcher(o.metricsToken);
  const authenticateMetrics = async (req: FastifyRequest) => {
    if (metricsTokenMatches(bearer(req))) return;
    await authenticate(req);
    requireAdmin(req.principal);
  };
  const who = (req: FastifyRequest): Principal => req.principal!;

  app.setErrorHandler((err: any, req: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) {
      return reply.status(400).send({ code: ErrorCode.BadInput, message: describeValidationError(err.validation, err.validationContext) });
    }
    if (isTesseraError(err)) {
      const body: Record<string, unknown> = { code: err.code, message: err.message };
      if (err.culprits.length) body.culprits = [...err.culprits];
      if (err.evidence.length) body.evidence = toHex(encodeEvidence(err.evidence));
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
  // The operator console's page and assets hold no data (node/http/console.ts): they load without a key.
  const probes = new Set<string>([ROUTES.health.url, ROUTES.ready.url, ...CONSOLE_STATIC_URLS]);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const url = req.routeOptions.url ?? '';
    if (url === ROUTES.metrics.url) await authenticateMetrics(req);
    else if (!probes.has(url)) await authenticate(req);
    // A node whose storage failed refuses everything (readiness included) until it restarts; its
    // metrics still answer (tessera_storage_failed says so).
    // The unseal routes answer too: a sealed node (node/sealed.ts) is unavailable but for them.
    const down = url === ROUTES.health.url || url === ROUTES.metrics.url || UNSEAL_URLS.has(url) ? undefined : o.unavailable?.();
    if (down) throw down;
  });

  const s = o.service;
  app.route({ ...ROUTES.health, handler: async () => ({ status: 'ok' }) });
  app.route({
    ...ROUTES.ready,
    handler: async (_req, reply) =>
      s.info().ready ? { ready: true } : reply.status(503).send({ code: ErrorCode.Unavailable, message: 'not connected to the coordinator' }),
  });
  app.route({
    ...ROUTES.metrics,
    handler: async (_req, reply) => {
      if (!o.metrics) throw new TesseraError(ErrorCode.Unavailable, 'metrics: this server collects none');
      const text = await o.metrics.scrape();
      return reply.type(o.metrics.contentType).send(text);
    },
  });
  app.route({ ...ROUTES.node, handler: async () => s.info() });
  app.route({ ...ROUTES.listKeys, handler: async (req) => s.listKeys(who(req), req.query.state) });
  app.route({ ...ROUTES.keygen, handler: async (req) => s.keygen(who(req), req.body) });
  app.route({
    ...ROUTES.getKey,
    handler: async (req) => {
      const { version } = req.query;
      return s.getKey(who(req), req.params.keyId, version === undefined ? undefined : parseDecimal('version', version, 1, MAX_VERSION));
    },
  });
  app.route({ ...ROUTES.sign, handler: async (req) => s.sign(who(req), req.params.keyId, req.body) });
  // One-round signing from presignatures (node/presign/pools.ts).
  app.route({ ...ROUTES.presignatures, handler: async (req) => s.presignatures(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.signShare, handler: async (req) => s.signShare(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.signBatch, handler: async (req) => s.signBatch(who(req), req.body) });
  // Threshold ECDSA presignatures and one-round signing from them (node/presign/ecdsa-pools.ts).
  app.route({ ...ROUTES.ecdsaPresignatures, handler: async (req) => s.ecdsaPresignatures(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.ecdsaSignShare, handler: async (req) => s.ecdsaSignShare(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.verify, handler: async (req) => s.verify(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.decapsulate, handler: async (req) => s.decapsulate(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.refresh, handler: async (req) => s.refresh(who(req), req.params.keyId, req.body) });
  // Resharing to a new committee (issue 13): a session of the dealers and the new committee, then the
  // handoff of its certificate to old holders that were not in it.
  app.route({ ...ROUTES.reshare, handler: async (req) => s.reshare(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.reshareHandoff, handler: async (req) => s.reshareHandoff(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.exportKey, handler: async (req) => s.exportKey(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.importKey, handler: async (req) => s.importKey(who(req), req.body) });
  app.route({ ...ROUTES.rotate, handler: async (req) => s.rotate(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.setState, handler: async (req) => s.setState(who(req), req.params.keyId, req.body) });
  app.route({ ...ROUTES.decline, handler: async (req) => s.decline(who(req), req.body) });
  app.route({ ...ROUTES.commitStatus, handler: async (req) => s.commitStatus(who(req), req.params.keyId) });
  app.route({ ...ROUTES.repair, handler: async (req) => s.repair(who(req), req.params.keyId, req.body) });
  // stagedAction answers the response of the action it is given (one service method for the three).
  app.route({ ...ROUTES.attestStaged, handler: async (req) => (await s.stagedAction(who(req), req.params.keyId, 'attest', req.body)) as StagedAttestResponse });
  app.route({ ...ROUTES.releaseVote, handler: async (req) => (await s.stagedAction(who(req), req.params.keyId, 'release', req.body)) as StagedReleaseResponse });
  app.route({ ...ROUTES.dropStaged, handler: async (req) => (await s.stagedAction(who(req), req.params.keyId, 'drop', req.body)) as StagedDropResponse });

  // Administration: admin API keys only (node/governance/admin.ts checks the role).
  const a = o.admin;
  app.route({ ...ROUTES.createTenant, handler: async (req) => a.createTenant(who(req), req.body.name) });
  app.route({ ...ROUTES.listTenants, handler: async (req) => a.listTenants(who(req)) });
  app.route({ ...ROUTES.getMembership, handler: async (req) => s.membership.get(who(req)) });
  app.route({ ...ROUTES.membershipHistory, handler: async (req) => s.membership.history(who(req)) });
  app.route({ ...ROUTES.changeMembership, handler: async (req) => s.membership.change(who(req), req.body) });
  app.route({ ...ROUTES.applyMembership, handler: async (req) => s.membership.apply(who(req), req.body) });
  app.route({ ...ROUTES.createApiKey, handler: async (req) => a.createApiKey(who(req), req.body) });
  app.route({ ...ROUTES.listApiKeys, handler: async (req) => a.listApiKeys(who(req), req.query.tenant) });
  app.route({ ...ROUTES.revokeApiKey, handler: async (req) => a.revokeApiKey(who(req), req.params.id) });
  app.route({ ...ROUTES.getPolicy, handler: async (req) => a.getPolicy(who(req)) });
  app.route({ ...ROUTES.setPolicy, handler: async (req) => a.setPolicy(who(req), req.body.rules) });
  app.route({ ...ROUTES.enableFailOpen, handler: async (req) => a.enableFailOpen(who(req), req.body?.durationMs) });
  app.route({ ...ROUTES.disableFailOpen, handler: async (req) => a.disableFailOpen(who(req)) });
  app.route({ ...ROUTES.rotateKek, handler: async (req) => a.rotateKek(who(req)) });
  app.route({ ...ROUTES.kekRotatePrepare, handler: async (req) => a.prepareKekRotation(who(req), req.body) });
  app.route({ ...ROUTES.auditLog, handler: async (req) => a.exportAudit(who(req)) });
  registerUnsealRoutes(app, o.unseal, who);
  registerConsole(app, { service: s, ...(o.metrics ? { metrics: o.metrics } : {}) });
  return app;
}
