/**
 * Issue 13, item 3 ("Done when"): a node SIGKILLed at each step of a repair leaves every key usable at its
 * last committed committee, and the repair can be completed; a repaired node (data dir deleted, new
 * identity) signs again with its peers, and the audit log of every node records it.
 *
 * A repair is a membership change (the lost node's index takes its new identity key, voted by the other
 * members) and then a reshare of every key onto the same committee, which deals the repaired node a fresh
 * share. Node 1 (a voter and a dealer) is killed by a test fault point (node/service.ts FAULT_POINTS) at
 * each step: staging, releasing and committing the membership change, and after the deal and before
 * staging the reshare that follows. Each time node 3 lost its data again, so every run is a new repair.
 * The reshare's own crash points on every role are test/integration/reshare-faults.test.ts's.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMBERSHIP_KEY_ID, MEMBERSHIP_TENANT } from '../../core/membership.js';
import type { Cluster } from '../../sdk/client.js';
import { hexToBytes, startTestCluster, verifySignature, waitFor, type TestCluster } from '../helpers/cluster.js';

let tc: TestCluster;
let key: { keyId: string; publicKey: string };

beforeAll(async () => {
  tc = await startTestCluster({ nodes: 3, threshold: 2 });
  key = await tc.cluster.keygen({ suite: 'ed25519', keyId: 'repaired', threshold: 2 });
}, 120_000);
afterAll(async () => tc?.close());

async function signsWith(cluster: Cluster, players: number[]): Promise<void> {
  const message = randomBytes(32);
  const sig = await cluster.sign({ keyId: key.keyId, message, players });
  expect(verifySignature('ed25519', hexToBytes(sig.signature), message, hexToBytes(key.publicKey)), `players ${players}`).toBe(true);
}

/** Start node `index` again without a fault point and wait until it is connected (node 3 may not be admitted yet). */
async function restartAlone(index: number): Promise<void> {
  tc.dev.start(index);
  await waitFor(`node ${index} connected`, async () => (await tc.client(index).info().catch(() => undefined))?.ready === true, 60_000, 100);
  await waitFor(`node ${index} sees node ${index === 1 ? 2 : 1}`, async () => (await tc.client(index).info()).online.includes(index === 1 ? 2 : 1), 30_000, 100);
}

/** Whether any node holds a staged membership change (a change interrupted after staging). */
async function stagedMembership(): Promise<boolean> {
  const statuses = await Promise.all(
    [1, 2].map((i) =>
      tc
        .client(i)
        .forTenant(MEMBERSHIP_TENANT)
        .commitStatus(MEMBERSHIP_KEY_ID)
        .catch(() => null),
    ),
  );
  return statuses.some((s) => s?.staged !== undefined);
}

const STEPS = [
  // The membership change: node 1 staged (its vote not released: the change drops), released its vote
  // (only the certificate resolves it now), committed (node 2 may commit on its vote).
  { point: 'commit-after-stage', phase: 'membership' },
  { point: 'commit-after-release', phase: 'membership' },
  { point: 'commit-after-commit', phase: 'membership' },
  // The reshare that re-deals the key to node 3: after node 1 dealt, before it staged.
  { point: 'reshare-after-deal', phase: 'reshare' },
  { point: 'reshare-before-stage', phase: 'reshare' },
] as const;

describe('repairing a node that lost its data directory, with a voter and dealer killed at each step', () => {
  for (const { point, phase } of STEPS) {
    it(`node 1 killed at ${point} (${phase}): the key still signs at its last committed committee, and the repair completes`, async () => {
      await tc.restartWith(1, { TESSERA_FAULT_POINTS: point });
      // Node 3 loses its data directory and comes back with a new identity (not yet admitted).
      const node3 = await tc.recreateNode(3);
      await node3.start();
      const replace = { index: 3, identityPublicKey: node3.identityPublicKey };
      // The membership steps fail the change itself; a reshare step fails the key's reshare, which
      // replace-node reports per key (the others go on).
      const outcome = await tc.cluster.replaceNode(replace, { joinTimeoutMs: 30_000 }).then(
        (r) => r.reshare.failures.map((f) => f.reason),
        (e: Error) => [e.message],
      );
      expect(outcome.length, "the repair with node 1 killed does not complete").toBeGreaterThan(0);
      await waitFor('node 1 stopped', async () => (await tc.client(1).info().then(() => false, () => true)), 30_000, 100);
      await restartAlone(1);

      // Every key is usable at its last committed committee: nodes 1 and 2 (node 3's share is gone).
      await signsWith(tc.cluster, [1, 2]);

      // Completing the repair: a membership change stuck after its votes left needs its certificate
      // assembled (`tessera repair` of the cluster's membership), then the same replace-node resumes.
      if (await stagedMembership()) {
        const report = await tc.cluster.forTenant(MEMBERSHIP_TENANT).repair(MEMBERSHIP_KEY_ID);
        expect(report.nodes.flatMap((n) => n.problems), 'repair problems').toEqual([]);
      }
      // ... and a reshare interrupted after some nodes staged it is resolved by `tessera repair --key-id`.
      if (phase === 'reshare') await tc.cluster.repair(key.keyId);
      const done = await tc.cluster.replaceNode(replace, { joinTimeoutMs: 60_000 });
      expect(done.membership.members.find((m) => m.index === 3)?.identityPublicKey).toBe(node3.identityPublicKey);
      expect(done.reshare.failures, JSON.stringify(done.reshare.failures) + tc.logs(8)).toEqual([]);
      await node3.ready(30_000);
      // The repaired node signs with each of its peers, under the key's original public key.
      await signsWith(done.cluster, [1, 3]);
      await signsWith(done.cluster, [2, 3]);
      for (const i of [1, 2, 3]) {
        const m = await tc.client(i).getMembership();
        expect(m.members.find((x) => x.index === 3)?.identityPublicKey, `node ${i}'s membership`).toBe(node3.identityPublicKey);
      }
    }, 180_000);
  }

  it('the audit log of every node records each repair: the voters their membership change, the repaired node the certificate it was handed', async () => {
    for (const i of [1, 2]) {
      const entries = (await tc.client(i).auditLog()).entries as unknown as Record<string, unknown>[];
      const changes = entries.filter((e) => e.operation === 'membership.change' && e.outcome === 'ok');
      // Every run that committed in this node's session (the others were finished from certificates: 'repair').
      expect(changes.length, `node ${i}'s membership changes`).toBeGreaterThanOrEqual(2);
      expect(entries).toContainEqual(expect.objectContaining({ operation: 'reshare', keyId: key.keyId, outcome: 'ok' }));
    }
    const entries3 = (await tc.client(3).auditLog()).entries as unknown as Record<string, unknown>[];
    expect(entries3).toContainEqual(expect.objectContaining({ operation: 'membership.repair', outcome: 'ok' }));
    expect(entries3).toContainEqual(expect.objectContaining({ operation: 'reshare', keyId: key.keyId, outcome: 'ok' }));
  }, 60_000);
});
