/**
 * OpenAPI 3.1 (issue 14 item 3): the committed documents (docs/openapi.json for a node,
 * docs/openapi-coordinator.json for the coordinator) are what the route schemas generate, they are valid
 * OpenAPI 3.1 (@seriousme/openapi-schema-validator), they describe every route, and a node serves the
 * same document at GET /openapi.json to an API key holder only.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ROUTES } from '../../contract/http.js';
import { COORDINATOR_ROUTES } from '../../contract/coordinator.js';
import { buildApi } from '../../node/http/api.js';
import { COORDINATOR_OPENAPI_FILE, NODE_OPENAPI_FILE, REGENERATE_COMMAND, coordinatorOpenApiJson, nodeOpenApiJson } from '../../scripts/openapi-documents.js';

const committed = (file: string): string => readFileSync(file, 'utf8');
/** "/v1/keys/:keyId" -> "/v1/keys/{keyId}" (OpenAPI path templates). */
const openApiPath = (url: string): string => url.replace(/:([A-Za-z]+)/g, '{$1}');

describe('OpenAPI documents', () => {
  it('docs/openapi.json is what the node\'s route schemas generate', async () => {
    expect(await nodeOpenApiJson() === committed(NODE_OPENAPI_FILE), `docs/openapi.json is out of date: run ${REGENERATE_COMMAND}`).toBe(true);
  });

  it('docs/openapi-coordinator.json is what a running coordinator serves at /openapi.json', async () => {
    expect(await coordinatorOpenApiJson() === committed(COORDINATOR_OPENAPI_FILE), `docs/openapi-coordinator.json is out of date: run ${REGENERATE_COMMAND}`).toBe(true);
  });

  it('both documents are valid OpenAPI 3.1 and describe every route of their route table', async () => {
    for (const [file, routes] of [
      [NODE_OPENAPI_FILE, ROUTES],
      [COORDINATOR_OPENAPI_FILE, COORDINATOR_ROUTES],
    ] as const) {
      const doc = JSON.parse(committed(file));
      const validator = new Validator();
      const result = await validator.validate(doc);
      expect(result.errors, file).toBeUndefined();
      expect(result.valid, file).toBe(true);
      expect(validator.version).toBe('3.1');
      expect(doc.openapi).toBe('3.1.0');
      // The validator does refuse a document that is not OpenAPI (here: without its required info).
      expect((await new Validator().validate({ ...doc, info: undefined })).valid).toBe(false);
      expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
      for (const [name, r] of Object.entries(routes)) {
        const op = doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()];
        expect(op, `${file}: ${r.method} ${r.url}`).toBeDefined();
        expect(op.operationId).toBe(name);
      }
      // Probes need no credentials; GET /metrics is text, its errors JSON.
      expect(doc.paths['/health'].get.security).toEqual([]);
      expect(doc.paths['/metrics'].get.security).toBeUndefined();
      expect(Object.keys(doc.paths['/metrics'].get.responses['200'].content)).toEqual(['text/plain']);
    }
    // The node's request schemas carry their bounds and descriptions into the document.
    const node = JSON.parse(committed(NODE_OPENAPI_FILE));
    const sign = node.paths['/v1/keys/{keyId}/sign'].post;
    expect(sign.requestBody.content['application/json'].schema.properties.players).toMatchObject({ minItems: 2, maxItems: 255, uniqueItems: true });
    // The operator console's page and assets are not API operations.
    expect(Object.keys(node.paths).filter((p) => p.startsWith('/console'))).toEqual([]);
  });

  it('a node serves the same document at GET /openapi.json, to API key holders only', async () => {
    const app = await buildApi({
      service: {} as never,
      admin: {} as never,
      authenticate: (key) => (key === 'tenant-key-0123456789' ? { tenant: 'default', role: 'tenant', apiKeyId: 'ak_1' } as never : undefined),
      logger: pino({ level: 'silent' }),
    });
    try {
      const denied = await app.inject({ method: 'GET', url: '/openapi.json' });
      expect(denied.statusCode).toBe(401);
      const served = await app.inject({ method: 'GET', url: '/openapi.json', headers: { authorization: 'Bearer tenant-key-0123456789' } });
      expect(served.statusCode).toBe(200);
      expect(served.headers['content-type']).toMatch(/^application\/json/);
      expect(served.body).toBe(committed(NODE_OPENAPI_FILE));
    } finally {
      await app.close();
    }
  });
});
