/**
 * The commit protocol's Promela model (model/commit.pml, explained in model/README.md) checked with
 * spin: `spin -a`, pan compiled with cc, then one pan run per property. The protocol as specified
 * must have 0 errors on (a) agree, (b) can_sign and (c) reaches (weak fairness, `pan -a -f`); the
 * deliberately broken variants (promote on a bare "I committed" claim; drop a voted result) must
 * violate (b), and the bare-claim one (a) too; the reachability claims must be violated (the
 * properties are not true for an empty reason).
 *
 * spin is not optional: if it is missing this test fails (CI installs it in .ci/run).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODEL = fileURLToPath(new URL('../../model/commit.pml', import.meta.url));
const INSTALL_HINT = 'install it with `apt-get install -y spin gcc` (CI does so in .ci/run)';
const MAX_DEPTH = '20000'; // the deepest run (a broken variant) is under 2000 steps

interface PanResult {
  errors: number;
  output: string;
}

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${cmd} could not run (${r.error.message}); ${INSTALL_HINT}`);
  const output = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${output}`);
  return output;
}

function requireTool(cmd: string, versionArg: string): void {
  const r = spawnSync(cmd, [versionArg], { encoding: 'utf8' });
  if (r.error) {
    throw new Error(
      `${cmd} is not installed, and the commit-protocol model cannot be checked without it; ${INSTALL_HINT}`,
    );
  }
}

const dirs: string[] = [];

/** Generates and compiles pan for one variant of the model (each -D macro in `defines`). */
function buildPan(defines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-spin-'));
  dirs.push(dir);
  copyFileSync(MODEL, join(dir, 'commit.pml'));
  run('spin', [...defines.map((d) => `-D${d}`), '-a', 'commit.pml'], dir);
  run('cc', ['-O0', '-o', 'pan', 'pan.c'], dir);
  return dir;
}

/** Runs pan on one named LTL property of the model; `fair` adds weak fairness (-f). */
function checkProperty(dir: string, property: string, fair = false): PanResult {
  const output = run('./pan', ['-a', ...(fair ? ['-f'] : []), `-m${MAX_DEPTH}`, '-N', property], dir);
  // A search cut short by the depth bound proves nothing: refuse it.
  expect(output).not.toMatch(/max search depth too small/);
  expect(output).toContain(`ltl formula ${property}`);
  const m = /errors: (\d+)/.exec(output);
  if (!m) throw new Error(`pan printed no error count:\n${output}`);
  return { errors: Number(m[1]), output };
}


afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('commit protocol model (spin)', () => {
  // A failing test, not a skipped one: CI must never pass without checking the model.
  it('spin and a C compiler are installed', () => {
    requireTool('spin', '-V');
    requireTool('cc', '--version');
  });

  describe('as specified', () => {
    let dir: string;
    beforeAll(() => {
      dir = buildPan([]);
    });

    it('(a) agree: two honest nodes never commit different results for the key version', () => {
      const r = checkProperty(dir, 'agree');
      expect(r.errors, r.output).toBe(0);
      expect(existsSync(join(dir, 'commit.pml.trail'))).toBe(false);
    });

    it('(b) can_sign: no state where the honest nodes differ and no certificate can bring the behind one forward', () => {
      const r = checkProperty(dir, 'can_sign');
      expect(r.errors, r.output).toBe(0);
    });

    it('(c) reaches: every commit reaches the other honest node when it comes back (weak fairness)', () => {
      const r = checkProperty(dir, 'reaches', true);
      expect(r.output).toMatch(/fairness enabled/);
      expect(r.errors, r.output).toBe(0);
    });

    it('is not vacuous: both nodes commit, a retry session commits, a node is behind a certified peer while crashed', () => {
      for (const property of ['reach_both_commit', 'reach_retry_commit', 'reach_behind']) {
        const r = checkProperty(dir, property);
        expect(r.errors, `${property} should be reachable:\n${r.output}`).toBeGreaterThan(0);
      }
    });
  });

  it('broken (-DBARE_CLAIM, promote staged on a bare "I committed" claim): spin finds a split and a stuck state', () => {
    const dir = buildPan(['BARE_CLAIM']);
    const b = checkProperty(dir, 'can_sign');
    expect(b.errors, b.output).toBeGreaterThan(0);
    expect(existsSync(join(dir, 'commit.pml.trail'))).toBe(true);
    const a = checkProperty(dir, 'agree');
    expect(a.errors, a.output).toBeGreaterThan(0);
  });

  it('broken (-DDROP_AFTER_VOTE, a restarted node drops a result it voted for): spin finds a stuck state', () => {
    const dir = buildPan(['DROP_AFTER_VOTE']);
    const b = checkProperty(dir, 'can_sign');
    expect(b.errors, b.output).toBeGreaterThan(0);
  });
});
