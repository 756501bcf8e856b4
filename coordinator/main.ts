/**
 * Coordinator process entry:
 *   node dist/coordinator/main.js --config coordinator.json          (from source: tsx coordinator/main.ts)
 *   TESSERA_COORDINATOR_PORT=7400 TESSERA_COORDINATOR_MEMBERSHIP=membership.json node dist/coordinator/main.js
 * See ./config.ts for the fields. A bad option or config exits with status 2 and one line naming the
 * field; --help prints the usage and exits 0.
 */
import { pino } from 'pino';
import { ConfigError, loadConfigFile, loadConfigFromEnv, type LoadedConfig } from './config.js';
import { startCoordinator } from './server.js';
import { loadIdentityEngine } from '../core/identity.js';
import { watchParent } from '../runtime/parent-watch.js';

export const COORDINATOR_USAGE = `usage: tessera-coordinator [--config FILE]
  (compiled: node dist/coordinator/main.js; from source: tsx coordinator/main.ts)
  --config FILE   the coordinator's JSON config file (default: $TESSERA_COORDINATOR_CONFIG); without
                  one, TESSERA_COORDINATOR_PORT, _HOST, _ID, _SESSION_TIMEOUT_MS, _MEMBERSHIP,
                  _MEMBERSHIP_STATE, _TLS_CERT, _TLS_KEY, _LOG_LEVEL and _METRICS_TOKEN configure it
                  (_METRICS_TOKEN also with --config)
  -h, --help      print this help and exit
A bad option or config exits 2 with one line on stderr; a coordinator that cannot start exits 1.`;

/** How long a stop may take before the process exits anyway. */
const STOP_GRACE_MS = 10_000;

function parseArgs(argv: string[]): { config?: string; help?: true } {
  const out: { config?: string; help?: true } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      out.help = true;
    } else if (a === '--config') {
      const v = argv[++i];
      if (!v) throw new ConfigError('--config', 'expected a file path');
      out.config = v;
    } else if (a.startsWith('--config=')) {
      out.config = a.slice('--config='.length);
    } else {
      throw new ConfigError(a, 'unknown argument (try --help)');
    }
  }
  return out;
}

async function main(): Promise<void> {
  let config: LoadedConfig;
  try {
    const args = parseArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write(`${COORDINATOR_USAGE}\n`);
      process.exit(0);
    }
    const path = args.config ?? process.env.TESSERA_COORDINATOR_CONFIG;
    config = path ? loadConfigFile(path) : loadConfigFromEnv();
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : e instanceof Error ? e.message : String(e);
    process.stderr.write(`tessera-coordinator: config error: ${msg}\n`);
    process.exit(2);
  }
  const logger = pino({ level: config.logLevel, base: { service: 'tessera-coordinator' } });
  await loadIdentityEngine();
  let coordinator;
  try {
    coordinator = await startCoordinator({ ...config.options, logger });
  } catch (e) {
    // A membership state file that does not follow from the configured membership is a config error
    // (coordinator/membership-state.ts): the operator must look at it, a retry would not help.
    if (e instanceof ConfigError) {
      process.stderr.write(`tessera-coordinator: config error: ${e.message.split('\n')[0]}\n`);
      process.exit(2);
    }
    process.stderr.write(`tessera-coordinator: cannot start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
  logger.info({ url: coordinator.url }, 'ready');
  let stopping = false;
  const stop = (signal: string) => {
    // A second signal while stopping, or a close that does not finish in time (a relay connection that
    // never ends), still ends the process: a coordinator must never linger with its port open.
    if (stopping) {
      if (signal !== 'parent exited') process.exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.warn({ graceMs: STOP_GRACE_MS }, 'close did not finish in time; exiting');
      process.exit(1);
    }, STOP_GRACE_MS).unref();
    coordinator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  watchParent(() => stop('parent exited'));
}

// Anything main() did not catch still ends as one line on stderr, never a stack trace.
main().catch((e: unknown) => {
  process.stderr.write(`tessera-coordinator: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}\n`);
  process.exit(1);
});
