/**
 * Write docs/openapi.json (a node's API) and docs/openapi-coordinator.json (the coordinator's HTTP
 * routes): the OpenAPI 3.1 documents the servers serve at GET /openapi.json, generated from the route
 * schemas (contract/http.ts, contract/console.ts, contract/coordinator.ts). `--check` writes nothing and
 * exits 1 if a file differs (test/unit/openapi.test.ts makes the same comparison in `npm test`).
 *
 *   npx tsx scripts/gen-openapi.ts [--check]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { COORDINATOR_OPENAPI_FILE, NODE_OPENAPI_FILE, REGENERATE_COMMAND, coordinatorOpenApiJson, nodeOpenApiJson } from './openapi-documents.js';

const check = process.argv.includes('--check');
for (const [file, want] of [
  [NODE_OPENAPI_FILE, await nodeOpenApiJson()],
  [COORDINATOR_OPENAPI_FILE, await coordinatorOpenApiJson()],
] as const) {
  if (check) {
    let have = '';
    try {
      have = readFileSync(file, 'utf8');
    } catch {
      /* missing: differs */
    }
    if (have !== want) {
      process.stderr.write(`${file} differs from the route schemas: run ${REGENERATE_COMMAND}\n`);
      process.exitCode = 1;
    }
  } else {
    writeFileSync(file, want);
    process.stdout.write(`wrote ${file}\n`);
  }
}
