/**
 * Cluster membership changes end to end (issue 13, items 2 and 3), with real processes: a 3-node 2-of-3
 * cluster with an ed25519 and an ecdsa-secp256k1 key of the default tenant and an ed25519 key of a second
 * tenant (moved with the admin keys acting for it, ACT_AS_TENANT_HEADER).
 * - add node 4 (`tessera cluster add-node`; a rerun through the SDK's Cluster.addNode resumes and finds it
 *   done): every key moves onto 1..4 and signs with node 4, under its ORIGINAL public key;
 * - remove node 2 (`tessera cluster remove-node`, which rewrites the cluster file; SIGKILLed after its first
 *   key, then `tessera cluster reshare-all` finishes): every key is on 1,3,4 and signs; node 2's old share can
 *   no longer sign with the others (they refuse it, and moved epoch);
 * - replace node 3 (its data dir deleted, back with a new identity: Cluster.replaceNode): it signs again
 *   with its peers, and every node's audit log records the membership change.
 * One shared cluster, few keys: the steps build on each other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partyIndices } from '../../core/committee.js';
import { Cluster, newSessionId, NodeClient, type KeyInfo, type SessionRequest } from '../../sdk/client.js';
import { readClusterFile } from '../../sdk/cluster-file.js';
import { clusterFileAfterChange, writeClusterFileAtomic } from '../../sdk/membership.js';
import { jsonOf, tessera, type CliResult } from '../helpers/cli.js';
import { bytesToHex, hexToBytes, message32, rejectionOf, startTestCluster, TEST_REQUEST_TIMEOUT_MS, verifySignature, type TestCluster } from '../helpers/cluster.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const KEYS = [
  { tenant: 'default', keyId: 'mem-ed', suite: 'ed25519' },
  { tenant: 'default', keyId: 'mem-ec', suite: 'ecdsa-secp256k1' },
  { tenant: 'acme', keyId: 'mem-acme', suite: 'ed25519' },
] as const;

describe('cluster membership: add, remove and replace a node; every key follows', () => {
  let tc: TestCluster;
  const original = new Map<string, string>();
  /** The Cluster of the current membership (each step returns the next one). */
  let cluster: Cluster;

  const committeeOf = (k: KeyInfo) => [...partyIndices(k.publicPackage)];
  /** A Cluster of the nodes the cluster file lists (as the CLI loads it), with the tests' request deadline. */
  const clusterOfFile = () =>
    new Cluster(
      readClusterFile(tc.clusterFile).nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index, identityPublicKey: n.identityPublicKey, timeoutMs: TEST_REQUEST_TIMEOUT_MS })),
      { threshold: 2 },
    );
  /**
   * Run `tessera ARGS` (the cluster file of tc) and call `act` once when `line` appears on its stderr: a
   * step that must happen mid-command (test/helpers/cli.ts tessera() returns only at the end).
   */
  function cliStartingOn(args: string[], line: string, act: (child: ChildProcess) => Promise<void>): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'sdk/main.ts', ...args], { cwd: ROOT, env: { ...process.env, TESSERA_CLUSTER: tc.clusterFile }, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let stderr = '';
      let acted: Promise<void> | undefined;
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (!acted && stderr.includes(line)) acted = act(child);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        const stdoutBytes = Buffer.concat(out);
        Promise.resolve(acted).then(() => resolve({ code, stdout: stdoutBytes.toString(), stderr, stdoutBytes }), reject);
      });
    });
  }
  /** Sign with `players` as each key's tenant, and verify under the key's original public key. */
  async function signsWith(c: Cluster, players: number[], label: string): Promise<void> {
    for (const k of KEYS) {
      const message = message32(`${label} ${k.keyId}`);
      const sig = await c.forTenant(k.tenant).sign({ keyId: k.keyId, message, players });
      expect(verifySignature(k.suite, hexToBytes(sig.signature), message, hexToBytes(original.get(k.keyId)!)), `${k.keyId} with ${players}`).toBe(true);
    }
  }
  async function committees(c: Cluster): Promise<number[][]> {
    return Promise.all(KEYS.map(async (k) => committeeOf(await c.forTenant(k.tenant).getKey(k.keyId))));
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    await tc.cluster.createTenant('acme');
    for (const k of KEYS) original.set(k.keyId, (await tc.cluster.forTenant(k.tenant).keygen({ suite: k.suite, keyId: k.keyId, threshold: 2 })).publicKey);
    cluster = tc.cluster;
  }, 180_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('add node 4 with `tessera cluster add-node`: one certified change of nodes 1..3, then every key of both tenants on 1..4, signing with node 4 under its original public key', async () => {
    const n4 = await tc.addNode(4);
    // A voter's operator who refuses stops the change before any node is asked; its hook saw the whole change.
    const seen: SessionRequest[] = [];
    const refusing = tc.withHooks({ 1: (r) => (seen.push(r), true), 3: () => false });
    const current = (await refusing.membership()).membership!;
    const next = [...current.members.map((m) => ({ index: m.index, identityPublicKey: m.identityPublicKey })), n4];
    expect(await rejectionOf(refusing.changeMembership(next))).toMatchObject({ code: 'POLICY_DENIED' });
    expect(seen).toMatchObject([{ operation: 'membership', keyId: 'membership', epoch: 1, added: [4], removed: [], replaced: [] }]);
    expect((seen[0] as { members: unknown[] }).members).toHaveLength(4);
    expect((await tc.cluster.membership()).epoch).toBe(0);

    // `tessera cluster add-node`, node 4 started once the change is committed (when the CLI says it waits for it).
    const identityFile = join(tc.dir, 'node-4.identity');
    writeFileSync(identityFile, `${n4.identityPublicKey}\n`);
    const add = await cliStartingOn(
      ['cluster', 'add-node', '--index', '4', '--url', n4.url, '--api-key', n4.apiKey, '--identity-file', identityFile, '--json'],
      'waiting for node(s) 4 to connect',
      () => n4.start(),
    );
    const r = jsonOf(add);
    expect(r).toMatchObject({ epoch: 1, members: [1, 2, 3, 4], resumed: false, change: { added: [4], removed: [], replaced: [], unchanged: [1, 2, 3] } });
    expect(r.nodes.filter((n: { outcome: string }) => n.outcome === 'committed').map((n: { node: number }) => n.node)).toEqual([1, 2, 3]);
    expect(r.reshare, add.stderr).toMatchObject({ total: 3, reshared: 3, skipped: 0, failed: 0 });
    expect(add.stderr.split('\n').filter((l) => /^tessera cluster: \[\d\/3\] (default|acme)\/mem-\S+ v1: resharing onto 1,2,3,4 \.\.\. done$/.test(l)), add.stderr).toHaveLength(3);
    // The cluster file holds node 4 (with its identity) from the commit on.
    const file = readClusterFile(tc.clusterFile);
    expect(file.nodes.map((n) => [n.index, n.identityPublicKey === n4.identityPublicKey])).toEqual([[1, false], [2, false], [3, false], [4, true]]);
    cluster = clusterOfFile();
    expect(cluster.indices).toEqual([1, 2, 3, 4]);
    expect(await committees(cluster)).toEqual(KEYS.map(() => [1, 2, 3, 4]));
    await signsWith(cluster, [2, 4], 'after add');
    const m = await cluster.membership();
    expect(m).toMatchObject({ agreed: true, epoch: 1 });

    // A rerun (the SDK's) finds everything done: nothing committed again, every key skipped.
    const again = await cluster.addNode(n4);
    expect(again.membership.resumed).toBe(true);
    expect(again.reshare).toMatchObject({ total: 3, reshared: 0, skipped: 3, failed: 0 });
  }, 240_000);

  it('remove node 2 with `tessera cluster remove-node`, killed mid-way and resumed by reshare-all: keys on 1,3,4 and signing; node 2 cannot sign with the others any more', async () => {
    // A key that would be left with fewer nodes than its threshold stops the removal before anything changes.
    await cluster.keygen({ suite: 'ed25519', keyId: 'mem-strict', threshold: 4 });
    const stranded = await tessera(['cluster', 'remove-node', '--index', '2'], { TESSERA_CLUSTER: tc.clusterFile }, 120_000);
    expect(stranded.code, stranded.stderr).toBe(1);
    expect(stranded.stderr.trim().split('\n').at(-1)).toMatch(/^tessera: BAD_PARAMETERS: removing node 2 would strand 1 key version\(s\); nothing was changed: default\/mem-strict v1: its threshold 4 is above the 3 node\(s\) it would have on the new membership \(1,3,4\)/);
    expect((await cluster.membership()).epoch).toBe(1);
    await cluster.retire('mem-strict', 1);
    await cluster.destroy('mem-strict', 1); // a destroyed version holds nothing to move

    // The CLI is killed (SIGKILL) once the first key moved: the change is committed and the cluster file
    // rewritten; `tessera cluster reshare-all` then moves the rest (what is done is skipped).
    const killed = await cliStartingOn(['cluster', 'remove-node', '--index', '2', '--concurrency', '1', '--json'], '[1/3]', async (child) => void child.kill('SIGKILL'));
    expect(killed.code, killed.stderr).toBe(null);
    expect(killed.stderr).toMatch(/^tessera cluster: \[1\/3\] \S+ v1: resharing onto 1,3,4 \.\.\. done$/m);
    expect((await cluster.membership()).epoch).toBe(2);
    expect(readClusterFile(tc.clusterFile).nodes.map((n) => n.index)).toEqual([1, 3, 4]);
    const res = await tessera(['cluster', 'reshare-all', '--json'], { TESSERA_CLUSTER: tc.clusterFile }, 180_000);
    const out = jsonOf(res);
    expect(out.reshare, res.stderr).toMatchObject({ total: 3, failed: 0 });
    expect(out.reshare.skipped, res.stderr).toBeGreaterThanOrEqual(1);
    expect(out.reshare.reshared + out.reshare.skipped).toBe(3);
    const file = readClusterFile(tc.clusterFile);
    expect(file.nodes.map((n) => n.index)).toEqual([1, 3, 4]);

    cluster = clusterOfFile();
    expect(await committees(cluster)).toEqual(KEYS.map(() => [1, 3, 4]));
    await signsWith(cluster, [1, 4], 'after remove');

    // Node 2 still holds its old share, at an epoch the others left; node 1 refuses a session with it.
    const held = await tc.client(2).getKey('mem-ed');
    const now = await cluster.getKey('mem-ed');
    expect(held.epoch).toBeLessThan(now.epoch);
    const request: SessionRequest = { operation: 'sign', sessionId: newSessionId(), keyId: 'mem-ed', message: bytesToHex(message32('node 2 again')), players: [1, 2] };
    const refused = await rejectionOf(tc.client(1).join(request));
    expect(refused.code).toBe('UNEXPECTED_PARTY');
  }, 240_000);

  it('replace node 3 (data dir lost, new identity): its shares are re-dealt, it signs with its peers, and every node audits the change', async () => {
    const before = (await cluster.membership()).membership!.members.find((m) => m.index === 3)!;
    const n3 = await tc.recreateNode(3);
    expect(n3.identityPublicKey).not.toBe(bytesToHex(before.identityPublicKey));
    const r = await cluster.replaceNode({ index: 3, identityPublicKey: n3.identityPublicKey }, { onCommitted: () => n3.start() });
    expect(r.membership).toMatchObject({ epoch: 3, change: { replaced: [3], unchanged: [1, 4] } });
    expect(r.reshare, JSON.stringify(r.reshare.failures)).toMatchObject({ total: 3, reshared: 3, failed: 0 });
    cluster = r.cluster;
    expect(await committees(cluster)).toEqual(KEYS.map(() => [1, 3, 4]));
    await signsWith(cluster, [3, 4], 'after repair');

    for (const i of [1, 3, 4]) {
      const entries = (await cluster.nodes[cluster.indices.indexOf(i)]!.auditLog()).entries as unknown as Record<string, unknown>[];
      const changes = entries.filter((e) => String(e.operation).startsWith('membership.') && e.outcome === 'ok' && e.version === 3);
      expect(changes.length, `node ${i}'s audit of the epoch 3 change`).toBeGreaterThan(0);
    }

    // The CLI, with the cluster file as `tessera cluster replace-node` writes it: every node agrees, and
    // reshare-all (what moves is read from the newest change) finds every key already moved.
    writeClusterFileAtomic(tc.clusterFile, clusterFileAfterChange(readClusterFile(tc.clusterFile), { replaced: [{ index: 3, identityPublicKey: n3.identityPublicKey }] }));
    const env = { TESSERA_CLUSTER: tc.clusterFile };
    expect(jsonOf(await tessera(['cluster', 'membership', '--json'], env))).toMatchObject({ agreed: true, epoch: 3, members: [{ index: 1 }, { index: 3, identityPublicKey: n3.identityPublicKey }, { index: 4 }] });
    const resumed = await tessera(['cluster', 'reshare-all', '--json'], env, 120_000);
    expect(jsonOf(resumed)).toMatchObject({ reshare: { total: 3, reshared: 0, skipped: 3, failed: 0 } });
    expect(resumed.stderr).toMatch(/\[3\/3\] \S+ v1: skipped \(already on the membership\)/);
  }, 240_000);
});
