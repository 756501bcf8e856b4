#!/usr/bin/env node
/**
 * `npm test`: the whole suite as two vitest runs at once, one per core of the 2-core CI machine.
 *
 * Vitest gives a 2-core machine one worker (CPUs - 1), so the suite ran file after file: the in-process
 * tests (unit, property, vectors, fuzz, model; CPU-bound in the test process) waited for the tests
 * that start node processes (integration, compose; mostly waiting on those processes), and one core
 * sat idle for most of the in-process part. Here the two groups run side by side, each in its own
 * vitest with its usual single worker: never two process clusters at once, as before; only the
 * Docker Compose test (AFTER_IN_PROCESS, below) runs its containers beside an integration test. The
 * in-process and compose output is printed when the process group ends (not interleaved); the exit
 * code is non-zero if any run failed.
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
/** Tests that start node, coordinator or CLI processes. */
const PROCESSES = ['test/integration'];
/**
 * The Docker Compose test runs after the in-process group, in its run's slot, side by side with the
 * process group (the long pole of the suite: ~25 minutes, against ~5 for the in-process group), so
 * its minutes (container creation on the vfs storage driver, health checks, a stack restart) are not
 * added to the suite's. It waits on the engine more than it computes; the image it runs is built in
 * the background by .ci/run (scripts/docker-prepare.sh) while the other tests run.
 */
const AFTER_IN_PROCESS = ['test/compose'];
/**
 * Integration files that run in that second slot too, after the compose test, instead of in the
 * process group: the slot is free from about minute 12 of the suite while the process group runs
 * for some 25 more. Files whose one cluster (or node set) is their own, chosen so the two groups end
 * near the same time. Then two clusters run at once; no test asserts a timing.
 */
const SECOND_SLOT_PROCESSES = [
  'test/integration/kek-rotation.test.ts',
  'test/integration/unseal.test.ts',
  'test/integration/kek-pkcs11.test.ts',
  'test/integration/rotate-all.test.ts',
  'test/integration/package.test.ts',
  'test/integration/faults.test.ts',
  'test/integration/cli-commands.test.ts',
];
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
  const [[inProcess, compose], processes] = await Promise.all([
    run(IN_PROCESS, { buffer: true }).then(async (first) => [first, await run([...AFTER_IN_PROCESS, ...SECOND_SLOT_PROCESSES], { buffer: true })]),
    run([...PROCESS_GROUP_OPTIONS, ...PROCESSES, ...SECOND_SLOT_PROCESSES.flatMap((f) => ['--exclude', f])], { buffer: false }),
  ]);
  process.stdout.write(`\n===== in-process tests (${IN_PROCESS.join(', ')}) =====\n`);
  process.stdout.write(inProcess.output);
  process.stdout.write(`\n===== compose tests and second-slot integration tests (${[...AFTER_IN_PROCESS, ...SECOND_SLOT_PROCESSES].join(', ')}) =====\n`);
  process.stdout.write(compose.output);
  const verdict = (r) => (r.code === 0 ? 'passed' : 'FAILED');
  process.stdout.write(`\n===== npm test: in-process tests ${verdict(inProcess)}; compose and second-slot tests ${verdict(compose)}; process tests ${verdict(processes)} =====\n`);
  process.exitCode = inProcess.code !== 0 || compose.code !== 0 || processes.code !== 0 ? 1 : 0;
}
