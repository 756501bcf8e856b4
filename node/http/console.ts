/**
 * The operator console's routes (issue 14 item 5): the read-only page at GET /console, its script and
 * style sheet, and the JSON routes it needs that the API did not have (contract/console.ts).
 *
 * The page and its two assets need no API key (node/http/api.ts lets CONSOLE_STATIC_URLS through its
 * auth hook): they hold no data. The operator pastes an admin API key into the page, which keeps it in
 * a variable and sends it as a bearer token with every data call; every JSON route here is admin-only.
 *
 * Where the files come from: scripts/build-console.mjs bundles node/console/ into dist/console/ under
 * the package root (the directory of Tessera's package.json, found from this module's own location by
 * runtime/package-info.ts findPackageJson). That is the same directory whether the node runs compiled
 * (dist/node/main.js, the image's /app/dist/console) or from source under tsx (<repo>/dist/console,
 * after `npm run build` or the builder alone). A node whose bundle is missing answers the page with 503
 * and says how to build it.
 *
 * Every console response carries a strict Content-Security-Policy (same origin only: no inline script
 * or style, no remote asset, no framing, no form posts), nosniff, no referrer and no caching.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { CONSOLE_PATHS, CONSOLE_ROUTES, type ConsoleSessionsResponse, type ConsoleStatusResponse, type MetricsHistoryResponse } from '../../contract/console.js';
import { findPackageJson, packageVersion } from '../../runtime/package-info.js';
import { requireAdmin } from '../governance/tenants.js';
import { MetricsHistory } from '../metrics-history.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeService } from '../service.js';

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
};

/** The bundle's directory: <package root>/dist/console (see the module comment). */
export function consoleAssetsDir(): string {
  return join(dirname(findPackageJson().path), 'dist', 'console');
}

const FILES = {
  [CONSOLE_PATHS.page]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [`${CONSOLE_PATHS.page}/`]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [CONSOLE_PATHS.script]: { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  [CONSOLE_PATHS.style]: { file: 'console.css', type: 'text/css; charset=utf-8' },
} as const;

export interface ConsoleOptions {
  /** The node's operations: its index and its sessions in flight (NodeService.sessionsInFlight). */
  service: Pick<NodeService, 'info' | 'sessionsInFlight'>;
  /**
   * The node's metrics, which the console's history samples (node/metrics-history.ts): its sampler runs
   * from here until the server closes (onClose). Without them the history route answers UNAVAILABLE.
   */
  metrics?: Pick<NodeMetrics, 'registry'>;
  /** Where the built page is; default consoleAssetsDir(). */
  assetsDir?: string;
  /** Time between two metrics samples; default node/metrics-history.ts DEFAULT_SAMPLE_INTERVAL_MS. */
  sampleIntervalMs?: number;
}

/** Any fastify server: buildApi's, whatever its type provider and HTTP flavour (the routes here declare their own schemas). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFastify = FastifyInstance<any, any, any, any, any>;

export function registerConsole(app: AnyFastify, o: ConsoleOptions): void {
  // Found on first use: a server without a package root (none in any layout we ship) still starts, and answers 503.
  let dir = o.assetsDir;
  const assetsDir = (): string | undefined => {
    try {
      dir ??= consoleAssetsDir();
    } catch {
      /* left undefined: the page answers 503 */
    }
    return dir;
  };
  const startedAt = Date.now();
  // The sampler lives as long as the server that serves it: started now, stopped when the server closes.
  const history = o.metrics
    ? new MetricsHistory({
        registry: o.metrics.registry,
        ...(o.sampleIntervalMs !== undefined ? { intervalMs: o.sampleIntervalMs } : {}),
        onError: (e) => app.log.warn({ err: { message: e.message } }, 'console: a metrics sample could not be read'),
      })
    : undefined;
  if (history) {
    history.start();
    app.addHook('onClose', async () => history.stop());
  }

  for (const [url, { file, type }] of Object.entries(FILES)) {
    app.route({
      method: 'GET',
      url,
      // Not part of the JSON API (the OpenAPI document leaves it out).
      schema: { hide: true } as never,
      handler: async (_req: FastifyRequest, reply: FastifyReply) => {
        reply.headers(SECURITY_HEADERS);
        let body: Buffer;
        try {
          const from = assetsDir();
          if (from === undefined) throw new Error('no package root');
          body = await readFile(join(from, file));
        } catch {
          return reply
            .status(503)
            .type('text/plain; charset=utf-8')
            .send('The operator console is not built on this node: run `npm run build` (or `node scripts/build-console.mjs`) in the Tessera package.\n');
        }
        return reply.type(type).send(body);
      },
    });
  }

  const admin = (req: FastifyRequest, reply: FastifyReply) => {
    requireAdmin(req.principal);
    reply.header('cache-control', 'no-store');
  };
  app.route({
    ...CONSOLE_ROUTES.status,
    handler: async (req, reply): Promise<ConsoleStatusResponse> => {
      admin(req, reply);
      return { index: o.service.info().index, tesseraVersion: packageVersion(), nodeVersion: process.version, startedAt, now: Date.now() };
    },
  });
  app.route({
    ...CONSOLE_ROUTES.sessions,
    handler: async (req, reply): Promise<ConsoleSessionsResponse> => {
      admin(req, reply);
      return { sessions: o.service.sessionsInFlight.list(), now: Date.now() };
    },
  });
  app.route({
    ...CONSOLE_ROUTES.metricsHistory,
    handler: async (req, reply): Promise<MetricsHistoryResponse> => {
      admin(req, reply);
      if (!history) throw new TesseraError(ErrorCode.Unavailable, 'console: this server collects no metrics');
      return history.history();
    },
  });
}

