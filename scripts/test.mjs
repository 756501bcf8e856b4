#!/usr/bin/env node
/**
 * `npm test`: the whole suite as two vitest runs at once, one per core of the 2-core CI machine.
 *
 * Vitest gives a 2-core machine one worker (CPUs - 1), so the suite ran file after file: the in-process
 * tests (unit, property, vectors, fuzz, model; CPU-bound in the test process) waited for the tests
 * that start node processes (integration, compose; mostly waiting on those processes), and one core
 * sat idle for most of the in-process part. Here the two groups run side by side, each in its own
 * vitest with its usual single worker: never two clusters at once, as before. The in-process group's
 * output is printed when it ends (not interleaved); the exit code is non-zero if either group failed.
 *
 * With arguments (`npm test -- test/unit/x.test.ts -t name`) it is one plain `vitest run` with them.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');

/** In-process tests: no node processes, CPU-bound in the test process. */
const IN_PROCESS = ['test/unit', 'test/property', 'test/vectors', 'test/fuzz', 'test/model'];
/** Tests that start node, coordinator or CLI processes (or containers). */
const PROCESSES = ['test/integration', 'test/compose'];
/**
 * The process group runs its files one after another in one worker (--no-isolate) instead of a fresh
 * worker per file: each fresh worker imported the SDK, core and node modules again (about 1 s a file,
 * ~50 files, on the long pole of the suite). Every file starts its own cluster in its own temp dir on
 * OS-picked ports and stops it in afterAll, and none mocks a module or changes process.env, so they do
 * not share state. Measured on 10 integration files: import 8.3 s -> 2.2 s, time outside the tests
 * 12.3 s -> 2.7 s.
 */
const PROCESS_GROUP_OPTIONS = ['--no-isolate'];

function run(args, { buffer }) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, 'run', ...args], { cwd: root, stdio: buffer ? ['ignore', 'pipe', 'pipe'] : 'inherit', env: process.env });
    const chunks = [];
    if (buffer) {
      child.stdout.on('data', (c) => chunks.push(c));
      child.stderr.on('data', (c) => chunks.push(c));
    }
    const forward = (signal) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve({ code: code ?? (signal ? 1 : 0), output: Buffer.concat(chunks) });
    });
  });
}

const args = process.argv.slice(2);
if (args.length > 0) {
  process.exitCode = (await run(args, { buffer: false })).code;
} else {
  const [inProcess, processes] = await Promise.all([run(IN_PROCESS, { buffer: true }), run([...PROCESS_GROUP_OPTIONS, ...PROCESSES], { buffer: false })]);
  process.stdout.write(`\n===== in-process tests (${IN_PROCESS.join(', ')}) =====\n`);
  process.stdout.write(inProcess.output);
  process.stdout.write(`\n===== npm test: in-process tests ${inProcess.code === 0 ? 'passed' : 'FAILED'}; process tests ${processes.code === 0 ? 'passed' : 'FAILED'} =====\n`);
  process.exitCode = inProcess.code !== 0 || processes.code !== 0 ? 1 : 0;
}
