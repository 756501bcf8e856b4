/**
 * `tessera rotate --all` (issue 15 item 3, "Done when": rotate --all over 100 keys prints progress,
 * survives a kill midway, and finishes with every key on a new version) against a real 3-node cluster
 * started from source: 100 ed25519 keys, plus one key with no active version (skipped) and one with an
 * older active version beside the newest (the older one skipped). The CLI runs as a child process; it
 * is SIGKILLed once its progress shows some keys rotated, then run again: it resumes its run file,
 * rotates the rest, and every node holds every key on exactly one new version (none rotated twice).
 * Then the pre-approval policy rule (node/governance/policy.ts preapprove-rotation): node 3's operator
 * hands an API key to the others, they rotate a tenant's keys with it, node 3 audits each rotation
 * naming the rule and refuses that key anything else, and after `until`, that too.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
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
    const runFileText = readFileSync(runFile, 'utf8');
    expect(statSync(runFile).mode & 0o777).toBe(0o600);

    // The same command again: resumes the plan and finishes.
    const second = await tessera(['rotate', '--all', '--json'], env, 600_000);
    const r = jsonOf(second);
    expect(second.stderr).toMatch(/^tessera rotate: resuming run [0-9a-f]{16} of \d{4}-\d\d-\d\dT[\d:.]+Z: 101 key\(s\) to rotate, 2 skipped$/m);
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
    // No API key (nor anything else of the cluster file's secrets) in the run file or the output.
    const apiKeys = (JSON.parse(readFileSync(tc.clusterFile, 'utf8')) as { nodes: { apiKey: string }[] }).nodes.map((n) => n.apiKey);
    for (const text of [runFileText, first.stderr, second.stdout, second.stderr]) for (const k of apiKeys) expect(text.includes(k)).toBe(false);
    expect(runFileText).not.toMatch(/[0-9a-f]{64}/); // key ids, versions and a run id only: no public key, share or hash
    // The keys sign with their new version.
    const signed = await tc.cluster.sign({ keyId: keyIds[KEYS - 1]!, message: '00'.repeat(32) });
    expect(signed).toMatchObject({ version: 2 });
  }, 900_000);

  it("pre-approval: node 3's operator hands out an API key its policy pre-approves for emergency rotation; rotateAll runs with it, node 3 audits each rotation naming the rule, and the key can do nothing else", async () => {
    await tc.cluster.createTenant('ops');
    const own = await tc.cluster.createApiKeys('ops'); // each operator's own key of the tenant
    await tc.cluster.withApiKeys(own.map((k) => k.apiKey)).keygen({ suite: 'ed25519', keyId: 'ops-1' });
    await tc.cluster.withApiKeys(own.map((k) => k.apiKey)).keygen({ suite: 'ed25519', keyId: 'ops-2' });
    // Operator 3: a key for the emergency team, and the rule that is its standing approval.
    const delegate = await tc.client(3).createApiKey('ops');
    await tc.client(3).setPolicy([{ id: 'em-ops', type: 'preapprove-rotation', scope: { apiKeyId: delegate.id, tenant: 'ops' } }]);
    expect((await tc.client(3).getPolicy()).rules).toEqual([{ id: 'em-ops', type: 'preapprove-rotation', scope: { apiKeyId: delegate.id, tenant: 'ops' } }]);
    // The other operators' keys for nodes 1 and 2, the pre-approved key for node 3.
    const emergency = tc.cluster.withApiKeys([own[0]!.apiKey, own[1]!.apiKey, delegate.apiKey]);
    const r = await emergency.rotateAll();
    expect(r).toMatchObject({ total: 2, failed: [], skipped: [] });
    expect(r.rotated.map((k) => [k.tenant, k.keyId, k.fromVersion, k.toVersion, k.by])).toEqual([
      [null, 'ops-1', 1, 2, 'this-run'],
      [null, 'ops-2', 1, 2, 'this-run'],
    ]);
    const entries = (await tc.client(3).auditLog()).entries as unknown as Record<string, unknown>[];
    const rotations = entries.filter((e) => e.operation === 'rotate' && e.actor === delegate.id);
    // (The two keys rotate at once: their entries interleave.)
    expect(rotations.map((e) => [e.keyId, e.outcome, e.severity, e.reason]).sort((a, b) => String(a).localeCompare(String(b)))).toEqual([
      ['ops-1', 'ok', 'warning', 'pre-approved emergency rotation (policy rule em-ops)'],
      ['ops-1', 'started', 'warning', 'pre-approved emergency rotation (policy rule em-ops)'],
      ['ops-2', 'ok', 'warning', 'pre-approved emergency rotation (policy rule em-ops)'],
      ['ops-2', 'started', 'warning', 'pre-approved emergency rotation (policy rule em-ops)'],
    ]);
    // Every operator's hook still sees every rotation: one that refuses stops it before any node is asked.
    const refused = await tc.withHooks({ 3: () => false }).rotateAll({ tenant: 'ops' });
    expect(refused.rotated).toEqual([]);
    expect(refused.failed.map((f) => [f.tenant, f.keyId, f.version, f.reason])).toEqual([
      ['ops', 'ops-1', 2, 'POLICY_DENIED: policy hook of node 3 refused the rotate request'],
      ['ops', 'ops-2', 2, 'POLICY_DENIED: policy hook of node 3 refused the rotate request'],
    ]);
    // Nothing else: node 3 refuses the pre-approved key a signature (the others would sign).
    const sign = await emergency.sign({ keyId: 'ops-1', message: '00'.repeat(32), players: [2, 3] }).catch((e: unknown) => e);
    expect(sign).toMatchObject({ code: 'POLICY_DENIED' });
    expect((sign as Error).message).toMatch(/rule em-ops: this API key holds only a pre-approval of emergency rotation/);
    // Ended (until in the past on node 3's clock): refused too, and the key stays on its version.
    await tc.client(3).setPolicy([{ id: 'em-ops', type: 'preapprove-rotation', scope: { apiKeyId: delegate.id }, until: Date.now() - 1000 }]);
    const late = await emergency.rotate({ keyId: 'ops-1' }).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'POLICY_DENIED' });
    expect((late as Error).message).toMatch(/the emergency rotation pre-approval ended/);
    expect((await tc.client(3).getPolicy()).rules).toHaveLength(1);
    await tc.client(3).setPolicy([]);
    expect((await tc.cluster.withApiKeys(own.map((k) => k.apiKey)).getKey('ops-1')).version).toBe(2);
  }, 300_000);

  it('text report, --tenant: one tenant only, each key from and to version, then the run file is gone', async () => {
    const r = await tessera(['rotate', '--all', '--tenant', 'ops'], env, 300_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^run: [0-9a-f]{16}$/m);
    expect(r.stdout).toMatch(/^keys: 2 planned: 2 rotated, 0 failed; 0 skipped$/m);
    expect(r.stdout).toMatch(/^rotated ops\/ops-1 v2 -> v3$/m);
    expect(r.stdout).toMatch(/^rotated ops\/ops-2 v2 -> v3$/m);
    expect(r.stderr).toMatch(/^tessera rotate: \[2\/2\] ops\/ops-\d v2: rotated to v3$/m);
    expect(r.stdout).not.toMatch(/em-\d{3}/); // the default tenant's keys are not touched
    expect(existsSync(`${tc.clusterFile}.rotate-all.ops.json`)).toBe(false);
  }, 300_000);
});
