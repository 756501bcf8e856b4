/**
 * The package as an application gets it: `npm run build` (dist/), then `npm pack` into a temp dir.
 * Used by test/integration/package.test.ts and test/integration/example-app.test.ts.
 *
 * Test files run in parallel processes and both need dist/: the build runs under a lock (an atomic
 * mkdir next to dist/), so two builds never write dist/ at once and nobody packs a half-written one.
 * npm runs with --ignore-scripts after the explicit build: `prepare` would build again and print its
 * log on stdout, where `npm pack --json` prints the file list.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion (never throws for a non-zero exit; SIGKILLed after timeoutMs). */
export function run(cmd: string, args: string[], o: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((res) => {
    execFile(
      cmd,
      args,
      { cwd: o.cwd, env: o.env ?? process.env, timeout: o.timeoutMs ?? 300_000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        res({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 1 && !stderr ? err.message : '') });
      },
    );
  });
}

/** npm's own command (the one that came with this node), with no update check or funding noise. */
export const NPM = 'npm';
export const NPM_QUIET = ['--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=error'];

const LOCK = join(ROOT, 'node_modules', '.cache', 'tessera-build.lock');
const STALE_LOCK_MS = 5 * 60_000;

async function withBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A lock left by a killed run is taken over once it is older than any build takes.
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        /* removed meanwhile: try again */
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** `npm run build` (incremental, so cheap when dist/ is current); throws with tsc's output if it fails. */
export async function buildDist(): Promise<void> {
  await withBuildLock(async () => {
    const r = await run(NPM, ['run', 'build', '--silent'], { cwd: ROOT });
    if (r.code !== 0) throw new Error(`npm run build failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  });
}

/** Build, then `npm pack` into `destination`; returns the tarball's path. */
export async function packInto(destination: string): Promise<string> {
  await buildDist();
  const r = await withBuildLock(() => run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', destination, ...NPM_QUIET], { cwd: ROOT }));
  if (r.code !== 0) throw new Error(`npm pack failed (exit ${r.code}):\n${r.stderr}`);
  const [entry] = JSON.parse(r.stdout) as { filename: string }[];
  if (!entry) throw new Error(`npm pack printed no entry:\n${r.stdout}`);
  return join(destination, entry.filename);
}

/** `npm pack --dry-run --json` of the repo as it is (after a build): the paths it would ship. */
export async function packedFileList(): Promise<string[]> {
  await buildDist();
  const r = await withBuildLock(() => run(NPM, ['pack', '--dry-run', '--ignore-scripts', '--json', ...NPM_QUIET], { cwd: ROOT }));
  if (r.code !== 0) throw new Error(`npm pack --dry-run failed (exit ${r.code}):\n${r.stderr}`);
  const [entry] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
  return (entry?.files ?? []).map((f) => f.path).sort();
}
