/**
 * `tessera dev`: a local cluster (a coordinator and n node processes) for development, and
 * `tessera dev restart-node I` to bring one of its nodes back. sdk/dev.ts (process management, dev
 * certificates) is loaded only when one of these runs.
 */
import { DEFAULT_DEV_DATA_DIR } from './choices.js';
import { UsageError, type CommandSpec, type OptionSpec } from './spec.js';

const DATA: OptionSpec = { name: 'data', kind: 'string', value: 'DIR', help: "the dev cluster's data dir (keys, configs, logs, cluster.json)", default: DEFAULT_DEV_DATA_DIR };

export const DEV_COMMANDS: CommandSpec[] = [
  {
    path: ['dev'],
    summary: 'run a local cluster until Ctrl-C: a coordinator and n nodes, with cluster.json for the other commands',
    uses: 'dev',
    json: false,
    options: [
      { name: 'nodes', kind: 'int', value: 'N', help: 'how many nodes', default: '3', min: 2, max: 32 },
      { name: 'threshold', kind: 'int', value: 'T', help: 'how many nodes a key needs (2..N)', default: '2', min: 2 },
      DATA,
      { name: 'port', kind: 'int', value: 'PORT', help: "the coordinator's port; nodes use the ports after it (0: any free ports)", default: '7700', max: 65535 },
      { name: 'tls', kind: 'flag', help: 'TLS on every listener, with a development CA in DIR/tls/' },
    ],
    details: [
      'Started again with the same data dir, it keeps its keys and API keys. A node that dies is reported and the rest keep running (a 2-of-3 cluster keeps signing); `tessera dev restart-node I` brings it back.',
    ],
    examples: ['tessera dev', 'tessera dev --nodes 5 --threshold 3 --data .tessera/five --port 0'],
    async run(a) {
      const nodes = a.int('nodes') ?? 3;
      const threshold = a.int('threshold') ?? 2;
      if (threshold > nodes) throw new UsageError(`--threshold must be 2..${nodes} (the node count), got ${threshold}`, 'dev');
      const { runDev } = await import('../dev.js');
      return runDev({ nodes, threshold, dataDir: a.string('data') ?? DEFAULT_DEV_DATA_DIR, port: a.int('port') ?? 7700, tls: a.flag('tls') });
    },
  },
  {
    path: ['dev', 'restart-node'],
    summary: 'restart node I of the running `tessera dev` of a data dir',
    uses: 'dev',
    json: false,
    args: [{ name: 'I', kind: 'int', help: "the node's index (1..N)", min: 1 }],
    options: [DATA],
    examples: ['tessera dev restart-node 1'],
    async run(a) {
      const index = a.arg('I') as number;
      const { requestDevRestart } = await import('../dev.js');
      await requestDevRestart(a.string('data') ?? DEFAULT_DEV_DATA_DIR, index);
      process.stdout.write(`node ${index}: restarted and up again\n`);
      return 0;
    },
  },
];
