/**
 * Coordinator process entry:
 *   node --import tsx coordinator/main.ts --config coordinator.json
 *   TESSERA_COORDINATOR_PORT=7400 TESSERA_COORDINATOR_MEMBERSHIP=membership.json node --import tsx coordinator/main.ts
 * See ./config.ts for the fields. A bad config exits with status 2 and one line naming the field.
 */
import { pino } from 'pino';
import { ConfigError, loadConfigFile, loadConfigFromEnv, type LoadedConfig } from './config.js';
import { startCoordinator } from './server.js';
import { loadIdentityEngine } from '../core/identity.js';
import { watchParent } from '../runtime/parent-watch.js';

function parseArgs(argv: string[]): { config?: string } {
  const out: { config?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      const v = argv[++i];
      if (!v) throw new ConfigError('--config', 'expected a file path');
      out.config = v;
    } else if (a.startsWith('--config=')) {
      out.config = a.slice('--config='.length);
    } else {
      throw new ConfigError(a, 'unknown argument (usage: coordinator/main.ts [--config FILE])');
    }
  }
  return out;
}

async function main(): Promise<void> {
  let config: LoadedConfig;
  try {
    const args = parseArgs(process.argv.slice(2));
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
    process.stderr.write(`tessera-coordinator: cannot start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
  logger.info({ url: coordinator.url }, 'ready');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    coordinator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  watchParent(() => stop('parent exited'));
}

void main();
