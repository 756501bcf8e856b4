/**
 * `tessera reshare`, `tessera keys info` and Cluster.reshare's approval, input and handoff behaviour as
 * a user meets them, against a real 3-node cluster (issue 13 item 1; the suites, committee chains and
 * signing after a reshare are test/integration/reshare.test.ts): the key moves to nodes 2,3 with the
 * old holder outside the session handed the certificate, `keys info` / `keys list` show the committee,
 * `verify`, `public-key`, `sign` and `refresh` keep working with node 1 holding no record (an SDK
 * holding the record from before picks its players again), a refusing operator's hook
 * stops the reshare before any node is asked, and the key moves back onto 1,2,3 (node 1 joins).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionRequest } from '../../sdk/client.js';
import { jsonOf, tessera, type CliResult } from '../helpers/cli.js';
import { bytesToHex, hexToBytes, message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

/** A usage error or failure as promised: `code`, nothing on stdout, one stderr line without a stack. */
function expectFailure(r: CliResult, code: 1 | 2, pattern: RegExp): void {
  expect(r.code, `exit status (stderr: ${r.stderr})`).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(lines[0]).not.toMatch(/^\s*at\s|must NOT|instancePath/);
}

describe('tessera reshare against a 3-node cluster', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  const cli = (args: string[]) => tessera(args, env, 120_000);
  const keyId = 'cli-rs';
  let publicKey: string;
  let signature: string;
  const message = bytesToHex(message32('signed before the reshare'));

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    env = { TESSERA_CLUSTER: tc.clusterFile };
    publicKey = (await tc.cluster.keygen({ suite: 'ed25519', keyId })).publicKey;
    signature = (await tc.cluster.sign({ keyId, message })).signature;
  }, 120_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('a refusing operator stops it before any node is asked; the hooks see the whole request', async () => {
    const seen: SessionRequest[] = [];
    const refusing = tc.withHooks({
      2: (r) => (seen.push(r), true),
      3: () => false,
    });
    const e = await rejectionOf(refusing.reshare(keyId, { threshold: 2, nodes: [2, 3], dealers: [2, 3] }));
    expect(e).toMatchObject({ code: 'POLICY_DENIED' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ operation: 'reshare', keyId, suite: 'ed25519', version: 1, threshold: 2, nodes: [2, 3], dealers: [2, 3] });
    expect((seen[0] as { oldPackageDigest: string }).oldPackageDigest).toMatch(/^[0-9a-f]{64}$/);
    // Nothing changed anywhere.
    for (const i of [1, 2, 3]) expect((await tc.client(i).getKey(keyId)).epoch).toBe(0);
  }, 120_000);

  it('SDK input the key refuses: a dealer that holds no share, fewer dealers than the threshold, a node outside the cluster', async () => {
    const some = await rejectionOf(tc.cluster.reshare(keyId, { threshold: 2, nodes: [2, 3], dealers: [2] }));
    expect(some).toMatchObject({ code: 'BAD_INPUT' });
    expect(some.message).toMatch(/dealers: give at least the key's threshold 2/);
    expectFailure(await cli(['reshare', '--key-id', keyId, '--threshold', '2', '--nodes', '2,4']), 2, /--nodes: the cluster has nodes 1\.\.3, got 4/);
  }, 120_000);

  it('reshare --json to nodes 2,3 (dealers 2,3): node 1, outside the session, is handed the certificate and erases; keys info and keys list show the committee; sign, verify and refresh use it', async () => {
    const r = jsonOf(await cli(['reshare', '--key-id', keyId, '--threshold', '2', '--nodes', '3,2', '--dealers', '2,3', '--json']));
    expect(r).toMatchObject({ keyId, version: 1, suite: 'ed25519', publicKey, threshold: 2, nodes: [2, 3], epoch: 1, dealers: [2, 3] });
    expect(r.previous).toEqual({ threshold: 2, nodes: [1, 2, 3], epoch: 0 });
    expect(r.handoff).toEqual([{ node: 1, outcome: 'erased' }]);
    expect(r).not.toHaveProperty('key');
    expect(r.sessionId).toMatch(/^[0-9a-f]{32}$/);

    expect(await rejectionOf(tc.client(1).getKey(keyId))).toMatchObject({ code: 'NOT_FOUND' });
    const info = jsonOf(await cli(['keys', 'info', '--key-id', keyId, '--json']));
    expect(info).toMatchObject({ keyId, version: 1, publicKey, threshold: 2, parties: 2, nodes: [2, 3], epoch: 1, state: 'active' });
    const text = await cli(['keys', 'info', '--key-id', keyId]);
    expect(text.stdout).toMatch(/^nodes: 2,3$/m);
    const list = await cli(['keys', 'list']);
    expect(list.stdout).toMatch(new RegExp(`^${keyId} {2}v1 {2}ed25519 {2}active {2}2-of-2 \\[2,3\\] {2}${publicKey} `, 'm'));
    expect((await tc.cluster.listKeys()).find((k) => k.keyId === keyId)?.epoch).toBe(1);

    // Node 1 holds no record: verify and public-key ask the nodes that do.
    expect(jsonOf(await cli(['verify', '--key-id', keyId, '--message', message, '--signature', signature, '--json']))).toMatchObject({ valid: true });
    expect(jsonOf(await cli(['public-key', '--key-id', keyId, '--json'])).publicKey).toBe(publicKey);
    // Players outside the committee are refused by the SDK, naming them (an SDK that has not cached the
    // key's record from before the CLI's reshare: one that has learns it from the nodes' NOT_FOUND).
    const outside = await rejectionOf(tc.withHooks({}).sign({ keyId, message, players: [1, 2] }));
    expect(outside).toMatchObject({ code: 'BAD_INPUT' });
    expect(outside.message).toMatch(/players: node 1 holds no share of key cli-rs version 1 \(its nodes: 2,3\)/);
    // tc.cluster still holds the record from before the CLI's reshare (it signed in beforeAll): the
    // players it picks from it include node 1, which answers NOT_FOUND; it reads the record again and
    // signs with the committee. So do the CLI (a fresh SDK) and refresh (a session of nodes 2,3).
    const again = await tc.cluster.sign({ keyId, message });
    expect(verifySignature('ed25519', hexToBytes(again.signature), hexToBytes(message), hexToBytes(publicKey))).toBe(true);
    const signed = jsonOf(await cli(['sign', '--key-id', keyId, '--message', message, '--json']));
    expect(verifySignature('ed25519', hexToBytes(signed.signature), hexToBytes(message), hexToBytes(publicKey))).toBe(true);
    expect(jsonOf(await cli(['refresh', '--key-id', keyId, '--json']))).toMatchObject({ keyId, version: 1, epoch: 2 });
    // Node 1 cannot deal any more.
    expect((await rejectionOf(tc.cluster.reshare(keyId, { threshold: 2, nodes: [1, 2, 3], dealers: [1, 2] }))).message).toMatch(/dealers: node\(s\) 1 hold no share/);
  }, 240_000);

  it('reshare (text) back onto nodes 1,2,3: node 1 joins; same public key, next epoch; node 1 signs again', async () => {
    const r = await cli(['reshare', '--key-id', keyId, '--threshold', '2', '--nodes', '1,2,3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^threshold: 2-of-3$/m);
    expect(r.stdout).toMatch(/^nodes: 1,2,3$/m);
    expect(r.stdout).toMatch(/^epoch: 3$/m);
    expect(r.stdout).toMatch(/^previous: 2-of-2 on nodes 2,3 \(epoch 2\)$/m);
    expect(r.stdout).toContain(`publicKey: ${publicKey}`);
    const held = await Promise.all([1, 2, 3].map((i) => tc.client(i).getKey(keyId)));
    expect(held.map((k) => [k.epoch, k.publicKey, k.publicPackage.indices])).toEqual([1, 2, 3].map(() => [3, publicKey, undefined]));
    const signed = await tc.cluster.sign({ keyId, message, players: [1, 3] });
    expect(verifySignature('ed25519', hexToBytes(signed.signature), hexToBytes(message), hexToBytes(publicKey))).toBe(true);
  }, 240_000);
});
