/**
 * `npm run bench [-- --only core|cluster|cli|reshare|membership|kek] [-- --quick]`
 *
 * Prints per-operation costs as plain tables and writes them to bench/results.json. This is where
 * Tessera's performance figures come from (tests never assert timings).
 *   --only core     in-process core/ functions only (bench/core.ts)
 *   --only cluster  real local clusters only (bench/cluster.ts: 2-of-3 on the default group backends,
 *                   the same restarted on noble, 3-of-5, 4-of-7; the single-key baseline, bench/single-key.ts)
 *   --only cli      CLI start-up only (bench/cli-startup.ts: `tessera --version` and a cold `tessera dev`
 *                   to ready, from source through tsx and from dist/)
 *   --only reshare  resharing only (bench/reshare.ts, issue 13: one key 2-of-3 <-> 3-of-5 per suite, and a
 *                   batch of keys reshared onto a new committee with progress, on a real 5-node cluster)
 *   --only membership  a membership change (bench/membership.ts, issue 13 item 2): add node 5 to a 2-of-4
 *                   cluster and reshare 100 keys onto it with progress (total seconds, keys/s)
 *   --only kek      KEK providers (bench/kek.ts, issue 15): store seal/open under a pkcs11 KEK in SoftHSM2
 *                   against a file KEK; and unseal time (bench/unseal.ts: a sealed shamir-unseal node given
 *                   its 3-of-5 shares until it serves, and sealed again)
 *   --quick         a fast smoke run: same tables, a handful of iterations each (figures are rough)
 * Last, issue 10's targets beside the figures with a met / NOT MET column (bench/targets.ts); a part
 * left out by --only shows as "not measured". results.json also holds the raw figures (`figures`,
 * with the CPU per operation of every process; `reshare`, the resharing figures) and the targets.
 */
import { writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { groupBackendNames } from '../core/suites.js';
import { ensureGroupBackends } from '../runtime/group-backend.js';
import { runCluster, failureLine, type ClusterFigures, type Failure } from './cluster.js';
import { runCore } from './core.js';
import { runCliStartup } from './cli-startup.js';
import { runReshare, type ReshareFigures } from './reshare.js';
import { runMembership, type MembershipFigures } from './membership.js';
import { runKek } from './kek.js';
import { runUnseal } from './unseal.js';
import { formatSection, type Section } from './stats.js';
import { issueTargets, targetsSection, type TargetResult } from './targets.js';

const HERE = dirname(fileURLToPath(import.meta.url));

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\nusage: npm run bench -- [--only core|cluster|cli|reshare|membership|kek] [--quick]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { only?: string; quick?: boolean };
  try {
    ({ values } = parseArgs({ args: process.argv.slice(2), options: { only: { type: 'string' }, quick: { type: 'boolean' } }, strict: true }));
  } catch (e) {
    usage((e as Error).message);
  }
  const only = values.only;
  if (only !== undefined && !['core', 'cluster', 'cli', 'reshare', 'membership', 'kek'].includes(only)) usage(`--only must be core, cluster, cli, reshare, membership or kek, got "${only}"`);
  const quick = values.quick === true;
  // This process is also the SDK of the cluster rows: choose its group backends now, as an SDK process
  // does on its first NodeClient, before bench/core.ts makes any point (afterwards the choice is refused
  // and the SDK would aggregate and verify on noble). TESSERA_GROUP_BACKEND applies as everywhere.
  ensureGroupBackends();

  const cpuList = cpus();
  const machine = {
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${platform()} ${release()} ${arch()}`,
  };
  const out = (s: string) => process.stdout.write(s + '\n');
  const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
  out(`Tessera bench${quick ? ' (--quick: rough figures)' : ''}`);
  out(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB`);
  out(`node ${machine.node}, ${machine.os}`);
  out(`group backends of this process (core rows without their own, and the SDK): ${JSON.stringify(groupBackendNames())}`);
  // Other work on the machine skews every figure: show how busy it was.
  const loadAtStart = loadavg().map((x) => Number(x.toFixed(2)));
  out(`load average at start (1/5/15 min): ${loadAtStart.join(' / ')}`);
  out(`times in milliseconds per call; p99 is nearest-rank (the maximum when n < 100)`);

  const emit = (s: Section) => out('\n' + formatSection(s));
  const sections: Section[] = [];
  let failures: Failure[] = [];
  let logTail: Record<string, string[]> = {};
  let figures: ClusterFigures | undefined;
  let reshareFigures: ReshareFigures | undefined;
  let membershipFigures: MembershipFigures | undefined;
  const coreSections: Section[] = [];
  const started = new Date().toISOString();
  const t0 = performance.now();
  let fatal: unknown;
  try {
    if (only === undefined || only === 'core') {
      log('core: running');
      coreSections.push(...(await runCore({ quick, emit })));
      sections.push(...coreSections);
    }
    if (only === undefined || only === 'cluster') {
      log('cluster: starting a 3-node dev cluster (then 2-of-3 on noble, 3-of-5, 4-of-7)');
      const r = await runCluster({ quick, emit, log });
      sections.push(...r.sections);
      failures = r.failures;
      logTail = r.logTail;
      figures = r.figures;
      if (r.error !== undefined) fatal = r.error;
    }
    if (only === undefined || only === 'cli') sections.push(...(await runCliStartup({ quick, emit, log })));
    if (only === undefined || only === 'reshare') {
      log('reshare: starting a 5-node dev cluster');
      const r = await runReshare({ quick, emit, log });
      sections.push(...r.sections);
      failures = [...failures, ...r.failures];
      logTail = { ...logTail, ...r.logTail };
      reshareFigures = r.figures;
      if (r.error !== undefined && fatal === undefined) fatal = r.error;
    }
    if (only === undefined || only === 'membership') {
      log('membership: starting a 4-node dev cluster (node 5 joins)');
      const r = await runMembership({ quick, emit, log });
      sections.push(...r.sections);
      failures = [...failures, ...r.failures];
      logTail = { ...logTail, ...r.logTail };
      membershipFigures = r.figures;
      if (r.error !== undefined && fatal === undefined) fatal = r.error;
    }
    if (only === undefined || only === 'kek') {
      sections.push(...(await runKek({ quick, emit, log })));
      sections.push(...(await runUnseal({ quick, emit, log })));
    }
  } catch (e) {
    fatal = e;
  }
  const elapsedS = (performance.now() - t0) / 1000;

  // Issue 10's targets beside the figures (a part left out by --only shows as "not measured").
  const targets: TargetResult[] = issueTargets(coreSections, figures);
  const targetTable = targetsSection(targets, quick);
  sections.push(targetTable);
  emit(targetTable);

  if (failures.length) {
    out(`\nFAILED CALLS (${failures.length}):`);
    const counts = new Map<string, number>();
    for (const f of failures) counts.set(failureLine(f), (counts.get(failureLine(f)) ?? 0) + 1);
    for (const [line, n] of counts) out(`  ${n} x ${line}`);
  }
  if (fatal !== undefined) out(`\nBENCH ABORTED: ${(fatal as Error)?.stack ?? String(fatal)}`);
  for (const [file, lines] of Object.entries(logTail)) {
    out(`\nlast lines of cluster log ${file}:`);
    for (const l of lines) out(`  ${l.length > 400 ? l.slice(0, 400) + '...' : l}`);
  }
  const loadAtEnd = loadavg().map((x) => Number(x.toFixed(2)));
  out(`\nbench finished in ${elapsedS.toFixed(0)} s; load average at end (1/5/15 min): ${loadAtEnd.join(' / ')}`);

  const file = join(HERE, 'results.json');
  writeFileSync(
    file,
    JSON.stringify({ started, quick, only: only ?? 'all', elapsedSeconds: Math.round(elapsedS), machine, loadAverage: { start: loadAtStart, end: loadAtEnd }, sections, targets, ...(figures ? { figures } : {}), ...(reshareFigures ? { reshare: reshareFigures } : {}), ...(membershipFigures ? { membership: membershipFigures } : {}), failures, ...(Object.keys(logTail).length ? { logTail } : {}), ...(fatal !== undefined ? { aborted: String((fatal as Error)?.message ?? fatal) } : {}) }, null, 2) + '\n',
  );
  out(`results written to ${file}`);
  if (fatal !== undefined || failures.length) process.exitCode = 1;
}

await main();
