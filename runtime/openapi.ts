/**
 * GET /openapi.json on nodes and the coordinator (issue 14 item 3): an OpenAPI 3.1.0 document generated
 * by @fastify/swagger from the schemas of the routes the server registered (contract/http.ts ROUTES and
 * contract/console.ts on a node, coordinator/server.ts on the coordinator), so it describes what is
 * served and cannot drift from it. scripts/gen-openapi.ts writes the same documents to docs/openapi.json
 * and docs/openapi-coordinator.json; test/unit/openapi.test.ts fails when those files drift.
 *
 * @fastify/swagger rather than a generator of our own: it already turns fastify route schemas (body,
 * querystring, params, response by status code, "4xx" classes) into OpenAPI operations, and it sees every
 * route registered after it, including those other modules add (the operator console), without a second
 * route list. Routes with `schema.hide` (the console's page, script and stylesheet) are left out.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';

export const OPENAPI_PATH = '/openapi.json';

export interface OpenApiOptions {
  title: string;
  description: string;
  /** The software version the document describes (package.json version). */
  version: string;
  /** URLs that need no credentials: their operations say `security: []`. */
  publicUrls: readonly string[];
  /** How the bearer token is obtained, for the security scheme's description. */
  bearerDescription: string;
  /** "GET /v1/keys" -> "listKeys": each operation's operationId (contract/http.ts ROUTES names). */
  operationIds?: ReadonlyMap<string, string>;
  /** Response schemas of GET /openapi.json besides 200, by status code (the node's errors: "4xx", "5xx"). */
  errorResponses?: Readonly<Record<string, object>>;
}

type Schema = Record<string, unknown>;

/**
 * A response schema whose body is not JSON carries contentMediaType (contract/http.ts
 * metricsResponseSchema: text/plain): in the document it is that media type's content, not JSON.
 */
function withMediaTypes(response: Record<string, Schema> | undefined): Record<string, Schema> | undefined {
  if (!response) return response;
  const out: Record<string, Schema> = {};
  for (const [status, schema] of Object.entries(response)) {
    const mediaType = schema.contentMediaType;
    if (typeof mediaType !== 'string') {
      out[status] = schema;
      continue;
    }
    const { contentMediaType: _, ...body } = schema;
    out[status] = { description: typeof schema.description === 'string' ? schema.description : 'Default Response', content: { [mediaType]: { schema: body } } };
  }
  return out;
}

/**
 * Register @fastify/swagger (OpenAPI 3.1.0, bearer security) and GET /openapi.json on `app`. Call it
 * before any route: swagger records routes as they are added.
 */
export async function registerOpenApi(app: FastifyInstance, o: OpenApiOptions): Promise<void> {
  const publicUrls = new Set([...o.publicUrls]);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: o.title, description: o.description, version: o.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: o.bearerDescription } } },
      security: [{ bearer: [] }],
    },
    transform: ({ schema, url, route }) => {
      const s = (schema ?? {}) as Schema;
      const method = Array.isArray(route.method) ? route.method[0] : route.method;
      const operationId = o.operationIds?.get(`${method} ${url}`);
      return {
        url,
        schema: {
          ...s,
          ...(s.response ? { response: withMediaTypes(s.response as Record<string, Schema>) } : {}),
          ...(operationId ? { operationId } : {}),
          ...(publicUrls.has(url) ? { security: [] } : {}),
        } as never,
      };
    },
  });
  let json: string | undefined;
  app.route({
    method: 'GET',
    url: OPENAPI_PATH,
    // Sent as text already serialised: the document is open-ended JSON, which a response schema would
    // make the serializer cut down to the listed fields.
    schema: { response: { 200: { type: 'object', description: 'this OpenAPI 3.1 document' }, ...o.errorResponses } },
    handler: async (_req, reply) => {
      json ??= openApiJson(app);
      return reply.type('application/json; charset=utf-8').send(json);
    },
  });
}

/** The document of a ready app (after app.ready()), as committed: two-space JSON, paths sorted, one final newline. */
export function openApiJson(app: FastifyInstance): string {
  const doc = (app as unknown as { swagger(): Record<string, unknown> }).swagger();
  const paths = doc.paths as Record<string, unknown>;
  const sorted = Object.fromEntries(Object.keys(paths).sort().map((p) => [p, paths[p]]));
  return `${JSON.stringify({ ...doc, paths: sorted }, null, 2)}\n`;
}
