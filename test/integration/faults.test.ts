/**
 * Faults with real node processes:
 * - a compromised coordinator that tampers with, drops, replays or misroutes relayed messages makes
 *   the session fail — it never succeeds with a wrong result — it never gets a node named as a
 *   culprit (relay faults name no node), and it never sees a share in the clear;
 * - a node killed at any point of a refresh never leaves the cluster with shares of mixed epochs that
 *   can no longer sign (node/epochs.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toHex } from '../../core/bytes.js';
import { getSigningSuite } from '../../core/suites.js';
import { startCoordinator, type Coordinator, type RelayedMessageFault } from '../../coordinator/server.js';
import { loadConfigFile } from '../../coordinator/config.js';
import { readKekFile } from '../../node/store/kek.js';
import { ShareStore } from '../../node/store/storage.js';
import { FAULT_POINTS } from '../../node/service.js';
import { Cluster, NodeClient } from '../../sdk/client.js';
import { startDevCluster, type DevCluster } from '../../sdk/dev.js';

function clusterOf(dev: DevCluster): Cluster {
  return new Cluster(dev.cluster.nodes.map((n) => new NodeClient({ url: n.url, apiKey: n.apiKey, index: n.index })));
}

async function expectVerifies(cluster: Cluster, keyId: string, players: number[]): Promise<void> {
  const message = randomBytes(32);
  const key = await cluster.getKey(keyId);
  const { signature } = await cluster.sign({ keyId, message, players });
  const ok = getSigningSuite(key.suite).verify(Buffer.from(signature, 'hex'), message, Buffer.from(key.publicKey, 'hex'));
  expect(ok).toBe(true);
}

/** Every share a node holds, hex, in both byte orders (read with the node stopped). */
async function storedShares(dev: DevCluster, keyIds: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of dev.cluster.nodes) {
    const kek = await readKekFile(join(dev.dataDir, `node-${n.index}.kek`));
    const store = await ShareStore.open({ dataDir: join(dev.dataDir, `node-${n.index}`), kek, nodeIndex: n.index });
    try {
      for (const keyId of keyIds) {
        const share = await store.getShare('default', keyId);
        if (!share) continue;
        out.push(toHex(share.secret.value), toHex(Uint8Array.from(share.secret.value).reverse()));
        share.secret.value.fill(0);
      }
    } finally {
      await store.close();
    }
  }
  return out;
}

describe('a compromised coordinator can only make sessions fail', () => {
  let dir: string;
  let dev: DevCluster;
  let coordinator: Coordinator;
  let cluster: Cluster;
  const seen: Uint8Array[] = [];
  let fault: (m: RelayedMessageFault) => RelayedMessageFault[] = (m) => [m];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-faults-'));
    dev = await startDevCluster({ nodes: 3, threshold: 2, dataDir: dir, port: 0, logLevel: 'warn' });
    // Replace the coordinator process by an in-process one on the same port that we control.
    await dev.kill(0);
    const cfg = loadConfigFile(join(dir, 'coordinator.json'));
    coordinator = await startCoordinator({
      ...cfg.options,
      sessionTimeoutMs: 4000,
      relayFault: (m) => {
        seen.push(m.payload);
        return fault(m);
      },
    });
    await dev.ready();
    cluster = clusterOf(dev);
    await cluster.keygen({ suite: 'ed25519', keyId: 'tamper-ed' });
    await cluster.keygen({ suite: 'hpke-x25519', keyId: 'tamper-kem' });
  }, 120_000);

  afterAll(async () => {
    await coordinator?.close();
    await dev?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const attacks: [string, (m: RelayedMessageFault) => RelayedMessageFault[]][] = [
    [
      'flips a bit',
      (m) => {
        if (m.from !== 1) return [m];
        const p = Uint8Array.from(m.payload);
        p[p.length - 100]! ^= 0x01;
        return [{ ...m, payload: p }];
      },
    ],
    ['truncates a message', (m) => (m.from === 1 ? [{ ...m, payload: m.payload.slice(0, 16) }] : [m])],
    ['sends garbage', (m) => (m.from === 1 ? [{ ...m, payload: randomBytes(512) }] : [m])],
    ['drops messages', (m) => (m.from === 2 ? [] : [m])],
    ['replays every message', (m) => [m, m]],
    ['relays a message as if another node sent it', (m) => (m.from === 1 ? [{ ...m, from: m.to === 2 ? 3 : 2 }] : [m])],
    ['moves a message into another session', (m) => [{ ...m, session: randomBytes(16) }]],
  ];

  for (const [name, attack] of attacks) {
    it(`fails, with a clear error naming no node, when it ${name}; the next clean session works`, async () => {
      fault = attack;
      const message = randomBytes(32);
      const err = await cluster.sign({ keyId: 'tamper-ed', message, players: [1, 2], presigned: false }).then(
        () => undefined,
        (e: Error & { code?: string; culprits?: readonly number[] }) => e,
      );
      expect(err, 'a tampered session must not succeed').toBeInstanceOf(Error);
      expect(typeof err!.code).toBe('string');
      // The SDK reports culprits from any node that names one; a relay fault must name none.
      expect(err!.culprits ?? [], err!.message).toEqual([]);
      fault = (m) => [m];
      await expectVerifies(cluster, 'tamper-ed', [1, 2]);
    }, 60_000);
  }

  it('never relays a share in the clear', async () => {
    fault = (m) => [m];
    await cluster.refresh({ keyId: 'tamper-ed' });
    await expectVerifies(cluster, 'tamper-ed', [2, 3]);
    await dev.stop();
    const shares = await storedShares(dev, ['tamper-ed', 'tamper-kem']);
    expect(shares.length).toBeGreaterThanOrEqual(12);
    expect(seen.length).toBeGreaterThan(0);
    const relayed = seen.map((p) => Buffer.from(p).toString('hex'));
    for (const s of shares) expect(relayed.some((p) => p.includes(s))).toBe(false);
  }, 60_000);
});

describe('refresh is crash-safe', () => {
  let dir: string;
  let dev: DevCluster;
  let cluster: Cluster;
  // Every crash point a refresh reaches: the reshare points (node/sessions/reshare.ts) are in no refresh,
  // so a case armed with one would only run a refresh without a crash (a node restart costs more than
  // the rest of a case); a node killed at each of them is reshare-faults.test.ts.
  const POINTS = FAULT_POINTS.filter((p) => !p.startsWith('reshare-'));
  /** Each case's key as made (before any refresh). */
  const made = new Map<string, Awaited<ReturnType<Cluster['getKey']>>>();
  /** The crash point node 2 runs with now: it comes back from each case's crash armed for the next case. */
  let armed: string | undefined;

  /** Stop node 2 (if it did not kill itself) and start it again with `point` (or none); wait until ready. */
  async function restartNode2(point: string | undefined): Promise<void> {
    await dev.kill(2);
    dev.start(2, point ? { TESSERA_FAULT_POINTS: point } : {});
    armed = point;
    await dev.ready();
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-crash-'));
    dev = await startDevCluster({ nodes: 3, threshold: 2, dataDir: dir, port: 0, logLevel: 'warn' });
    await dev.ready();
    cluster = clusterOf(dev);
    // Every case's key is made here, with node 2 unarmed (a keygen reaches the rounds and commit points too).
    for (const point of POINTS) {
      await cluster.keygen({ suite: 'ed25519', keyId: `crash-${point}` });
      made.set(point, await cluster.getKey(`crash-${point}`));
    }
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [k, point] of POINTS.entries()) {
    it(`a node killed at ${point}: reported exactly, every pair of nodes still signs, repair leaves one epoch`, async () => {
      const keyId = `crash-${point}`;
      if (armed !== point) await restartNode2(point);
      // Before node 2's vote left it, the refresh fails; after it, nodes 1 and 3 hold the certificate
      // and the SDK reports it committed (repair finishes node 2). Either way it is reported exactly.
      await cluster.refresh({ keyId }).catch(() => undefined);
      // Node 2 killed itself. Bring it back armed for the next case (repair and signing reach no crash
      // point: one restart per case), and finish any certified commit.
      await restartNode2(POINTS[k + 1]);
      const report = await cluster.repair(keyId);
      expect(report.nodes.flatMap((n) => n.problems)).toEqual([]);
      const epochs = await Promise.all([1, 2, 3].map(async (i) => (await cluster.getKey(keyId, undefined, i)).epoch));
      expect(new Set(epochs).size).toBe(1);
      for (const players of [
        [1, 2],
        [1, 3],
        [2, 3],
      ]) {
        await expectVerifies(cluster, keyId, players);
      }
      // Nothing is left staged: before node 2 staged, nodes 1 and 3 dropped theirs (no vote had left
      // any node); after it, repair finished the commit from the stored votes or the certificate.
      expect(report.nodes.filter((n) => n.waiting)).toEqual([]);
    }, 120_000);
  }

  it('after each crash, the next refresh of its key works and signing still verifies under the same public key (node 2 unarmed)', async () => {
    if (armed) await restartNode2(undefined);
    for (const point of POINTS) {
      const keyId = `crash-${point}`;
      const r = await cluster.refresh({ keyId });
      expect(r.epoch, keyId).toBeGreaterThan(made.get(point)!.epoch);
      expect((await cluster.getKey(keyId)).publicKey, keyId).toBe(made.get(point)!.publicKey);
      await expectVerifies(cluster, keyId, [1, 3]);
    }
  }, 120_000);
});
