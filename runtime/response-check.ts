/**
 * Checking every JSON response against its route's response schema, for tests (issue 14 item 3: "every
 * response observed in the integration tests matches its schema"). Off unless TESSERA_CHECK_RESPONSES=1
 * (vitest.config.ts sets it for every test, and the nodes and coordinators the tests start inherit it);
 * production does not pay for it and behaves as before.
 *
 * Why a hook: fastify's response serializer (fast-json-stringify) writes only the fields a schema lists
 * and coerces types, so a handler that returns an extra field or a wrong type is silently "fixed" on the
 * wire and no client test can see it. The check runs in preSerialization, on the object the handler
 * returned, before the serializer. A response with no schema for its status code is a mismatch too.
 * Text bodies (GET /metrics) never reach preSerialization: only JSON responses are checked.
 *
 * On a mismatch the answer is 500 RESPONSE_SCHEMA_MISMATCH naming the route, the status and the failing
 * field's path, and the same is logged: never a value (a response can hold a new API key).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export const RESPONSE_CHECK_ENV = 'TESSERA_CHECK_RESPONSES';
export const RESPONSE_SCHEMA_MISMATCH = 'RESPONSE_SCHEMA_MISMATCH';

/** Whether this process checks its responses: TESSERA_CHECK_RESPONSES=1 (anything else: no). */
export function responseCheckEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[RESPONSE_CHECK_ENV] === '1';
}

/**
 * The validator options responses are checked with, the node's request options (node/http/api.ts): no
 * coercion, no removal of unknown fields, no defaults. A validator that removed or coerced would change
 * the response it checks instead of failing it.
 */
export const STRICT_AJV_OPTIONS = { removeAdditional: false, useDefaults: false, coerceTypes: false, verbose: true } as const;

interface ValidationError {
  keyword: string;
  instancePath: string;
  params?: Record<string, unknown>;
}

/** Where a response fails its schema, in words: a JSON pointer and the rule, plus a field name for required/additional fields (never a value). */
export function describeMismatch(errors: readonly ValidationError[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'invalid';
  const at = e.instancePath || '/';
  const name = e.keyword === 'required' ? e.params?.missingProperty : e.keyword === 'additionalProperties' ? e.params?.additionalProperty : undefined;
  return typeof name === 'string' ? `${at}: ${e.keyword} "${name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}"` : `${at}: ${e.keyword}`;
}

/** The schema a response of this status code must match: the exact code, else its class ("4xx"/"4XX"), else "default". */
export function responseSchemaFor(responses: Record<string, unknown> | undefined, status: number): unknown {
  if (!responses) return undefined;
  const cls = `${Math.floor(status / 100)}`;
  return responses[String(status)] ?? responses[`${cls}xx`] ?? responses[`${cls}XX`] ?? responses.default;
}

export interface ResponseCheckLogger {
  error(obj: object, msg: string): void;
}

/**
 * Check every JSON response of `app` against its route's response schema (see the module comment).
 * Add it before the routes. Validation uses fastify's own validator compiler for the route
 * (request.compileValidationSchema, cached per schema), so the app must be built with STRICT_AJV_OPTIONS.
 */
export function addResponseCheck(app: FastifyInstance, log?: ResponseCheckLogger): void {
  app.addHook('preSerialization', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const route = req.routeOptions.url;
    // No route matched (the not-found handler): there is no schema to hold it to.
    if (route === undefined) return payload;
    const status = reply.statusCode;
    const schema = responseSchemaFor((req.routeOptions.schema as { response?: Record<string, unknown> } | undefined)?.response, status);
    let where: string | undefined;
    if (schema === undefined) where = 'no response schema for this status code';
    else {
      const validate = req.compileValidationSchema(schema as Record<string, unknown>);
      if (!validate(payload)) where = describeMismatch(validate.errors as ValidationError[] | null);
    }
    if (where === undefined) return payload;
    const fields = { route: `${req.method} ${route}`, status, where };
    (log ?? req.log).error(fields, 'response does not match its schema');
    reply.code(500);
    return { code: RESPONSE_SCHEMA_MISMATCH, message: `response of ${fields.route} (status ${status}) does not match its schema: ${where}` };
  });
}
