/**
 * The OpenAPI documents as the servers serve them at GET /openapi.json (runtime/openapi.ts): the node's
 * from its API as buildApi registers it (no node behind it: the document needs only the routes), the
 * coordinator's from a coordinator started on a free loopback port and asked. Used by
 * scripts/gen-openapi.ts (writes docs/) and test/unit/openapi.test.ts (fails on drift).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startCoordinator } from '../coordinator/server.js';
import { buildApi } from '../node/http/api.js';
import { OPENAPI_PATH, openApiJson } from '../runtime/openapi.js';

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), '../docs');
export const NODE_OPENAPI_FILE = resolve(DOCS, 'openapi.json');
export const COORDINATOR_OPENAPI_FILE = resolve(DOCS, 'openapi-coordinator.json');
export const REGENERATE_COMMAND = 'npx tsx scripts/gen-openapi.ts';

/** The node's document. The service and admin are never called: generating needs the routes only. */
export async function nodeOpenApiJson(): Promise<string> {
  const app = await buildApi({ service: {} as never, admin: {} as never, authenticate: () => undefined, logger: pino({ level: 'silent' }) });
  try {
    await app.ready();
    return openApiJson(app);
  } finally {
    await app.close();
  }
}

/** The coordinator's document, fetched from a running coordinator (an empty membership: no node joins). */
export async function coordinatorOpenApiJson(): Promise<string> {
  const coordinator = await startCoordinator({ port: 0, membership: new Map() });
  try {
    const res = await fetch(`${coordinator.httpUrl}${OPENAPI_PATH}`);
    if (res.status !== 200) throw new Error(`coordinator ${OPENAPI_PATH}: status ${res.status}`);
    return await res.text();
  } finally {
    await coordinator.close();
  }
}
