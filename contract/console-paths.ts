/**
 * The operator console's URLs (contract/console.ts has the routes' schemas). A module of its own, with no
 * imports, because the console's browser bundle (node/console/app.ts) needs these values and must not
 * pull in the node-side contract (contract/http.ts reaches HPKE and key-share code through core/).
 */

/** The page, its two assets and the console's JSON routes. */
export const CONSOLE_PATHS = {
  page: '/console',
  script: '/console/console.js',
  style: '/console/console.css',
  status: '/v1/admin/console/status',
  sessions: '/v1/admin/console/sessions',
  metricsHistory: '/v1/admin/console/metrics-history',
} as const;

/** The static files of the page: what node/http/api.ts's auth hook lets through without an API key (nothing else). */
export const CONSOLE_STATIC_URLS: readonly string[] = [CONSOLE_PATHS.page, `${CONSOLE_PATHS.page}/`, CONSOLE_PATHS.script, CONSOLE_PATHS.style];

/**
 * contract/http.ts ACT_AS_TENANT_HEADER, for the browser bundle, which cannot import that module (see
 * above). test/integration/console.test.ts checks the two are the same.
 */
export const ACT_AS_TENANT_HEADER_FOR_CONSOLE = 'x-tessera-tenant';
