/**
 * The coordinator's HTTP routes (coordinator/server.ts), besides its WebSocket relay: probes and
 * metrics. Each route's responses are written once here in TypeBox, as the node's are in
 * contract/http.ts; GET /openapi.json and docs/openapi-coordinator.json are generated from them.
 */
import { Type } from 'typebox';
import { errorSchema, healthResponseSchema, metricsResponseSchema } from './http.js';

const nodeIndex = Type.Integer({ minimum: 1, maximum: 255, description: 'a node index, an integer from 1 to 255' });

/** Route table: method, URL and schema of every HTTP route the coordinator serves (handlers in coordinator/server.ts). */
export const COORDINATOR_ROUTES = {
  health: { method: 'GET', url: '/health', schema: { summary: 'Liveness probe', response: { 200: healthResponseSchema } } },
  /** 200 once listening, with the nodes connected now; 503 { ready: false } while it closes. */
  ready: {
    method: 'GET',
    url: '/ready',
    schema: {
      summary: 'Readiness probe, with the nodes connected now',
      response: {
        200: Type.Object({ ready: Type.Boolean(), online: Type.Array(nodeIndex) }, { additionalProperties: false }),
        503: Type.Object({ ready: Type.Boolean() }, { additionalProperties: false }),
      },
    },
  },
  /** Prometheus metrics (coordinator/metrics.ts), text; the coordinator's metrics token only (401 otherwise). */
  metrics: { method: 'GET', url: '/metrics', schema: { summary: 'Prometheus metrics, text (the metrics token)', response: { 200: metricsResponseSchema, 401: errorSchema } } },
} as const;
