/**
 * The operator console's JSON routes (node/http/console.ts; the page is node/console/): what the page
 * needs that the rest of the API does not already answer. Admin API keys only, read-only.
 *
 *   GET /v1/admin/console/status            this node's software versions and start time
 *   GET /v1/admin/console/sessions          the sessions this node runs right now (node/sessions-in-flight.ts)
 *   GET /v1/admin/console/metrics-history   the last hour of a few metrics, sampled by node/metrics-history.ts
 *
 * Everything else the console shows comes from existing routes (contract/http.ts ROUTES): /v1/node,
 * /v1/admin/membership, /v1/admin/tenants, /v1/keys (per tenant, with the admin acting-tenant header)
 * and /v1/admin/audit. Nothing here can hold key material: ids, counts, times and closed words only.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { OPERATIONS } from '../core/session.js';
import { errorSchema } from './http.js';

export { CONSOLE_PATHS, CONSOLE_STATIC_URLS } from './console-paths.js';
import { CONSOLE_PATHS } from './console-paths.js';

const time = (description: string) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description });
const id = (description: string) => Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', description });

export const ConsoleStatusResponse = Type.Object(
  {
    index: Type.Integer({ minimum: 1, maximum: 255, description: "this node's index in the cluster" }),
    tesseraVersion: Type.String({ maxLength: 64, description: "the Tessera package version this node runs (its package.json's)" }),
    nodeVersion: Type.String({ maxLength: 64, description: 'the Node.js version this node runs, e.g. "v20.19.2"' }),
    startedAt: time('when this node process started, in milliseconds since the Unix epoch'),
    now: time("this node's clock when it answered, in milliseconds since the Unix epoch"),
  },
  { additionalProperties: false, description: "this node's software versions and start time" },
);
export type ConsoleStatusResponse = Static<typeof ConsoleStatusResponse>;

export const SessionInFlight = Type.Object(
  {
    sessionId: Type.String({ pattern: '^[0-9a-f]{32}$', description: 'the session id, 16 bytes as lowercase hex (the one the audit log records)' }),
    operation: Type.Enum([...OPERATIONS], { description: `the session's operation: one of ${OPERATIONS.join(', ')}` }),
    tenant: id('the tenant the session runs for'),
    keyId: id('the key the session works on'),
    version: Type.Integer({ minimum: 1, maximum: 0xffffffff, description: 'the key version the session works on (the new one for keygen and rotate)' }),
    suite: Type.String({ maxLength: 32, description: "the key's suite, e.g. ed25519" }),
    players: Type.Array(Type.Integer({ minimum: 1, maximum: 255, description: 'a node index' }), {
      minItems: 1,
      maxItems: 255,
      description: 'the nodes taking part, ascending',
    }),
    startedAt: time('when this node began the session, in milliseconds since the Unix epoch'),
  },
  { additionalProperties: false, description: 'one session this node has begun and not ended' },
);
export type SessionInFlight = Static<typeof SessionInFlight>;

export const ConsoleSessionsResponse = Type.Object(
  {
    sessions: Type.Array(SessionInFlight, { maxItems: 10_000, description: 'the sessions this node runs now, oldest first' }),
    now: time("this node's clock when it answered, in milliseconds since the Unix epoch"),
  },
  { additionalProperties: false, description: 'the sessions in flight on this node' },
);
export type ConsoleSessionsResponse = Static<typeof ConsoleSessionsResponse>;

/** The series node/metrics-history.ts samples (closed list: no label ever names a key, tenant or session). */
export const METRIC_SERIES = ['operationsOk', 'operationsFailed', 'operationsDenied', 'sessionsInFlight', 'nodesOnline', 'auditEntries', 'residentMemoryBytes'] as const;
export type MetricSeriesName = (typeof METRIC_SERIES)[number];

export const MetricsSample = Type.Object(
  {
    time: time('when the sample was taken, in milliseconds since the Unix epoch'),
    operationsOk: Type.Integer({ minimum: 0, description: 'operations that ended ok since the previous sample' }),
    operationsFailed: Type.Integer({ minimum: 0, description: 'operations that failed since the previous sample' }),
    operationsDenied: Type.Integer({ minimum: 0, description: 'operations refused (policy or role) since the previous sample' }),
    sessionsInFlight: Type.Integer({ minimum: 0, description: 'sessions this node had joined and not ended at the sample' }),
    nodesOnline: Type.Integer({ minimum: 0, maximum: 255, description: 'nodes the coordinator reported online at the sample (0 when not connected)' }),
    auditEntries: Type.Integer({ minimum: 0, description: "the audit log's head seq at the sample" }),
    residentMemoryBytes: Type.Integer({ minimum: 0, description: "the node process's resident memory at the sample, in bytes" }),
  },
  { additionalProperties: false, description: 'one sample of the console metrics' },
);
export type MetricsSample = Static<typeof MetricsSample>;

export const MetricsHistoryResponse = Type.Object(
  {
    intervalMs: Type.Integer({ minimum: 1, description: 'the time between two samples, in milliseconds' }),
    windowMs: Type.Integer({ minimum: 1, description: 'how far back the samples go at most, in milliseconds (one hour)' }),
    samples: Type.Array(MetricsSample, { maxItems: 100_000, description: 'the samples, oldest first; the last one is taken when the request is answered' }),
  },
  { additionalProperties: false, description: "the last hour of this node's console metrics" },
);
export type MetricsHistoryResponse = Static<typeof MetricsHistoryResponse>;

const withErrors = <T extends TSchema>(ok: T) => ({ 200: ok, '4xx': errorSchema, '5xx': errorSchema });

/** The console's JSON routes: method, URL and schema (node/http/console.ts registers each as is). */
export const CONSOLE_ROUTES = {
  status: {
    method: 'GET',
    url: CONSOLE_PATHS.status,
    schema: { summary: "This node's software versions and start time (operator console; admin API keys only)", response: withErrors(ConsoleStatusResponse) },
  },
  sessions: {
    method: 'GET',
    url: CONSOLE_PATHS.sessions,
    schema: { summary: 'The sessions this node runs now (operator console; admin API keys only)', response: withErrors(ConsoleSessionsResponse) },
  },
  metricsHistory: {
    method: 'GET',
    url: CONSOLE_PATHS.metricsHistory,
    schema: { summary: "The last hour of this node's console metrics (operator console; admin API keys only)", response: withErrors(MetricsHistoryResponse) },
  },
} as const;
