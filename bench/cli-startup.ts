/**
 * CLI start-up (issue 11): what a user waits for before the `tessera` command does anything.
 *   - `tessera --version`: process start to exit.
 *   - a cold `tessera dev` (a new data dir: identities, KEKs and the cluster file are made) from the
 *     process start to its `ready` line on stdout; then it is stopped with SIGINT.
 * Each twice: before (the TypeScript sources through tsx, as the `tessera` command ran until issue 11:
 * `node --import tsx sdk/main.ts`) and after (the compiled JavaScript the package ships:
 * `node dist/sdk/bin/tessera.js`, whose `tessera dev` runs dist/node/main.js and dist/coordinator/main.js
 * with plain node). dist/ is built first (`npm run build`, incremental).
 * A few runs each, median reported. `npm run bench -- --only cli [--quick]` runs only this part.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { summarize, type Section, type Stats } from './stats.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** How each variant starts the `tessera` command. */
const VARIANTS = [
  { label: 'before: tsx, from source', args: ['--import', 'tsx', join(ROOT, 'sdk', 'main.ts')] },
  { label: 'after: node, from dist/', args: [join(ROOT, 'dist', 'sdk', 'bin', 'tessera.js')] },
] as const;

interface Timed {
  ms: number;
  ok: boolean;
  detail: string;
}

/** Process start until exit. */
function timeToExit(args: string[], timeoutMs: number): Promise<Timed> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ ms: performance.now() - t0, ok: code === 0, detail: out.trim().split('\n')[0] ?? '' });
    });
  });
}

/** Process start until the `ready` line on stdout; then SIGINT and wait for the exit (not timed). */
function timeToReady(args: string[], timeoutMs: number): Promise<Timed> {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let result: Timed | undefined;
    const finish = (r: Timed) => {
      if (result) return;
      result = r;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        // A child that ignores SIGINT is killed: the bench must end by itself.
        setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
      }
    };
    const timer = setTimeout(() => finish({ ms: performance.now() - t0, ok: false, detail: `no ready line in ${timeoutMs / 1000} s` }), timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      // The line `tessera dev: ready — N nodes, threshold T` (not a progress line that mentions readiness).
      if (/(^|\n)(tessera dev: )?ready\b/.test(out)) finish({ ms: performance.now() - t0, ok: true, detail: '' });
    });
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', () => finish({ ms: performance.now() - t0, ok: false, detail: `exited before ready: ${out.trim().split('\n').slice(-1)[0] ?? ''}` }));
    child.on('close', () => res(result!));
  });
}

export async function runCliStartup(o: { quick: boolean; emit: (s: Section) => void; log: (s: string) => void }): Promise<Section[]> {
  o.log('cli: npm run build (dist/)');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  const buildOk = build.status === 0;
  const versionRuns = o.quick ? 3 : 7;
  const devRuns = o.quick ? 1 : 3;
  const rows: Stats[] = [];
  const failures: string[] = [];
  if (!buildOk) failures.push(`npm run build failed (${`${build.stdout ?? ''}${build.stderr ?? ''}`.trim().split('\n')[0] ?? build.error?.message}): the "after" rows run whatever dist/ holds`);

  for (const v of VARIANTS) {
    o.log(`cli: tessera --version (${v.label}) x ${versionRuns}`);
    const samples: number[] = [];
    for (let i = 0; i < versionRuns; i++) {
      const r = await timeToExit([...v.args, '--version'], 60_000);
      if (r.ok) samples.push(r.ms);
      else failures.push(`tessera --version (${v.label}): ${r.detail}`);
    }
    rows.push(summarize(`tessera --version  ${v.label}`, samples, samples.length < versionRuns ? { note: `${versionRuns - samples.length} failed` } : {}));
  }
  for (const v of VARIANTS) {
    o.log(`cli: cold tessera dev to ready (${v.label}) x ${devRuns}`);
    const samples: number[] = [];
    for (let i = 0; i < devRuns; i++) {
      const data = mkdtempSync(join(tmpdir(), 'tessera-bench-dev-'));
      try {
        const r = await timeToReady([...v.args, 'dev', '--data', data, '--port', '0'], 180_000);
        if (r.ok) samples.push(r.ms);
        else failures.push(`tessera dev (${v.label}): ${r.detail}`);
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    }
    rows.push(summarize(`cold tessera dev to ready  ${v.label}`, samples, samples.length < devRuns ? { note: `${devRuns - samples.length} failed` } : {}));
  }
  const section: Section = {
    title: 'CLI start-up: `tessera --version`, and a cold `tessera dev` (new data dir, 3 nodes, 2-of-3) until `ready`',
    note:
      'before: node --import tsx sdk/main.ts (TypeScript compiled at every start); after: node dist/sdk/bin/tessera.js (compiled JavaScript, as installed). ' +
      `Wall-clock from spawn; ${versionRuns} and ${devRuns} runs per row.` +
      (failures.length ? ` FAILED: ${failures.join('; ')}` : ''),
    rows,
  };
  o.emit(section);
  return [section];
}
