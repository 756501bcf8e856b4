/**
 * `tessera rotate --all` (issue 15 item 3, "Done when": rotate --all over 100 keys prints progress,
 * survives a kill midway, and finishes with every key on a new version) against a real 3-node cluster
 * started from source: 100 ed25519 keys, plus one key with no active version (skipped) and one with an
 * older active version beside the newest (the older one skipped). The CLI runs as a child process; it
 * is SIGKILLed once its progress shows some keys rotated, then run again: it resumes its run file,
 * rotates the rest, and every node holds every key on exactly one new version (none rotated twice).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../sdk/client.js';
import { jsonOf, tessera } from '../helpers/cli.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const KEYS = 100;
/** Rotated keys the first run must report before it is killed (it is killed long before the last). */
const KILL_AFTER = 10;

describe('tessera rotate --all over 100 keys, killed midway and resumed', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  const keyIds = Array.from({ length: KEYS }, (_, i) => `em-${String(i).padStart(3, '0')}`);

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    env = { TESSERA_CLUSTER: tc.clusterFile };
    // Four keygens at a time (no batch keygen exists): each is one DKG session of the 3 nodes.
    const queue = [...keyIds];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let k = queue.shift(); k !== undefined; k = queue.shift()) await tc.cluster.keygen({ suite: 'ed25519', keyId: k });
      }),
    );
    // No active version: skipped.
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'zz-retired' });
    await tc.cluster.retire('zz-retired', 1);
    // v2 and v1 both active (v1 re-activated after a rotation): v2 is rotated, v1 is skipped.
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'zz-two-active' });
    await tc.cluster.rotate({ keyId: 'zz-two-active' });
    await tc.cluster.activate('zz-two-active', 1);
  }, 600_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('usage errors: --all with --key-id, --version with --all, --tenant without --all', async () => {
    for (const [args, message] of [
      [['rotate', '--all', '--key-id', 'em-000'], /--all and --key-id: give one/],
      [['rotate', '--all', '--version', '1'], /--version goes with --key-id/],
      [['rotate', '--key-id', 'em-000', '--tenant', 't1'], /--tenant goes with --all/],
      [['rotate'], /--key-id is required \(or --all\)/],
    ] as const) {
      const r = await tessera([...args], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(message);
    }
  }, 120_000);

  it('prints progress, is SIGKILLed midway, resumes, and ends with every key on exactly one new version', async () => {
    const runFile = `${tc.clusterFile}.rotate-all.json`;
    // First run: killed once its progress shows KILL_AFTER keys rotated.
    const first = await new Promise<{ stderr: string; signal: NodeJS.Signals | null }>((res, rej) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', 'rotate', '--all', '--json'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
        if ((stderr.match(/: rotated to v\d+$/gm) ?? []).length >= KILL_AFTER) child.kill('SIGKILL');
      });
      child.stdout!.resume();
      child.on('error', rej);
      child.on('close', (_code, signal) => {
        clearTimeout(timer);
        res({ stderr, signal });
      });
    });
    expect(first.signal, first.stderr).toBe('SIGKILL');
    expect(first.stderr).toMatch(/^tessera rotate: starting run [0-9a-f]{16}: 101 key\(s\) to rotate, 2 skipped$/m);
    const progress = first.stderr.split('\n').filter((l) => /^tessera rotate: \[\d+\/101\] \S+ v\d+: rotated to v\d+$/.test(l));
    expect(progress.length).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(progress.length).toBeLessThan(101); // killed midway, not at the end
    expect(existsSync(runFile)).toBe(true);

    // The same command again: resumes the plan and finishes.
    const second = await tessera(['rotate', '--all', '--json'], env, 600_000);
    const r = jsonOf(second);
    expect(second.stderr).toMatch(/^tessera rotate: resuming run [0-9a-f]{16}: 101 key\(s\) to rotate, 2 skipped$/m);
    expect(second.stderr).toMatch(/^tessera rotate: \[101\/101\] /m);
    expect(r).toMatchObject({ resumed: true, total: 101, failed: [] });
    expect(r.runFile).toBeUndefined();
    expect(existsSync(runFile)).toBe(false);
    const rotated = r.rotated as { keyId: string; fromVersion: number; toVersion: number; by: string }[];
    expect(rotated.map((k) => k.keyId).sort()).toEqual([...keyIds, 'zz-two-active'].sort());
    // Every key the first run reported rotated is reported as done earlier, not rotated again.
    const killedRun = new Set(progress.map((l) => /\] (\S+) v/.exec(l)![1]!));
    for (const k of rotated) {
      expect(k, k.keyId).toMatchObject(k.keyId === 'zz-two-active' ? { fromVersion: 2, toVersion: 3 } : { fromVersion: 1, toVersion: 2 });
      if (killedRun.has(k.keyId)) expect(k.by, k.keyId).toBe('earlier');
    }
    expect(rotated.filter((k) => k.by === 'this-run').length).toBeGreaterThan(0);
    expect((r.skipped as { keyId: string; version: number }[]).map((s) => `${s.keyId} v${s.version}`).sort()).toEqual(['zz-retired v1', 'zz-two-active v1']);

    // Every node: each key has exactly one version more than before, the new one active, the old one retired.
    for (const i of [1, 2, 3]) {
      const byKey = new Map<string, KeyInfo[]>();
      for (const k of await tc.client(i).listKeys()) byKey.set(k.keyId, [...(byKey.get(k.keyId) ?? []), k]);
      for (const keyId of keyIds) {
        expect(byKey.get(keyId)!.map((v) => `v${v.version} ${v.state}`), `node ${i} ${keyId}`).toEqual(['v1 retired', 'v2 active']);
      }
      expect(byKey.get('zz-two-active')!.map((v) => `v${v.version} ${v.state}`), `node ${i}`).toEqual(['v1 active', 'v2 retired', 'v3 active']);
      expect(byKey.get('zz-retired')!.map((v) => `v${v.version} ${v.state}`), `node ${i}`).toEqual(['v1 retired']);
    }
    // The keys sign with their new version.
    const signed = await tc.cluster.sign({ keyId: keyIds[KEYS - 1]!, message: '00'.repeat(32) });
    expect(signed).toMatchObject({ version: 2 });
  }, 900_000);
});
