/**
 * End to end over a real local cluster (coordinator + node processes on random ports): DKG for every
 * suite at 2-of-3 and 3-of-5, signing with every 2-subset checked by independent verifiers,
 * threshold decapsulation against an @hpke/core sender, refresh then sign, parameter errors, and two
 * concurrent runs of 50 signatures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEM_SUITES, SIGNING_SUITES, SUITE_IDS, type SuiteId } from '../../core/suites.js';
import type { KeyInfo } from '../../contract/http.js';
import { TesseraClientError, type Cluster } from '../../sdk/client.js';
import {
  bytesToHex,
  hexToBytes,
  hpkeOpenWithSecret,
  hpkeSeal,
  message32,
  rejectionOf,
  startTestCluster,
  verifySignature,
  type TestCluster,
} from '../helpers/cluster.js';

/** The suite's standard public-key encoding: length and, for SEC1 encodings, the prefix byte. */
const PUBLIC_KEY_FORMAT: Record<SuiteId, { length: number; prefixes?: number[] }> = {
  ed25519: { length: 32 },
  'hpke-x25519': { length: 32 },
  secp256k1: { length: 33, prefixes: [0x02, 0x03] },
  p256: { length: 33, prefixes: [0x02, 0x03] },
  bip340: { length: 32 },
  'ecdsa-secp256k1': { length: 33, prefixes: [0x02, 0x03] },
  'ecdsa-p256': { length: 33, prefixes: [0x02, 0x03] },
  'hpke-p256': { length: 65, prefixes: [0x04] },
};

function expectStandardEncoding(key: KeyInfo): void {
  const pk = hexToBytes(key.publicKey);
  const f = PUBLIC_KEY_FORMAT[key.suite as SuiteId];
  expect(pk.length, `${key.suite} public key length`).toBe(f.length);
  if (f.prefixes) expect(f.prefixes, `${key.suite} SEC1 prefix`).toContain(pk[0]);
}

async function keygenAll(cluster: Cluster, threshold: number, parties: number): Promise<Map<string, KeyInfo>> {
  const keys = new Map<string, KeyInfo>();
  // Sequential: a DKG is CPU-bound in every node, and this keeps the run predictable on 2 cores.
  for (const suite of SUITE_IDS) {
    const key = await cluster.keygen({ suite, keyId: `ops-${threshold}of${parties}-${suite}`, threshold });
    expect(key).toMatchObject({ suite, threshold, parties, version: 1, epoch: 0 });
    expectStandardEncoding(key);
    keys.set(suite, key);
  }
  return keys;
}

async function signAndVerify(cluster: Cluster, key: KeyInfo, players: number[], label: string): Promise<void> {
  const message = message32(`${label} ${key.suite} ${players.join(',')}`);
  const { signature, version } = await cluster.sign({ keyId: key.keyId, message, players });
  expect(version).toBe(key.version);
  expect(verifySignature(key.suite, hexToBytes(signature), message, hexToBytes(key.publicKey)), `${key.suite} by ${players}`).toBe(true);
  // And it is a signature on this message only.
  expect(verifySignature(key.suite, hexToBytes(signature), message32('another message'), hexToBytes(key.publicKey))).toBe(false);
}

async function decapsulateAndOpen(cluster: Cluster, key: KeyInfo, players: number[]): Promise<void> {
  const plaintext = new TextEncoder().encode(`sealed to ${key.keyId} for ${players.join(',')}`);
  const sealed = await hpkeSeal(key.suite, hexToBytes(key.publicKey), plaintext);
  const { sharedSecret, version } = await cluster.decapsulate({ keyId: key.keyId, enc: sealed.enc, players });
  expect(version).toBe(key.version);
  expect(hexToBytes(sharedSecret).length).toBe(32);
  expect(bytesToHex(hpkeOpenWithSecret(key.suite, hexToBytes(sharedSecret), sealed))).toBe(bytesToHex(plaintext));
}

describe('2-of-3 cluster', () => {
  let tc: TestCluster;
  let keys: Map<string, KeyInfo>;
  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
  }, 90_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('DKG works for every suite and gives the standard public-key encodings', async () => {
    keys = await keygenAll(tc.cluster, 2, 3);
    // Every node holds the same public package.
    for (const key of keys.values()) {
      for (const i of [2, 3]) expect((await tc.cluster.getKey(key.keyId, undefined, i)).publicPackage).toEqual(key.publicPackage);
    }
  });

  it('every 2-subset signs with every signing suite, and every signature verifies independently', async () => {
    for (const suite of SIGNING_SUITES) {
      for (const players of [
        [1, 2],
        [1, 3],
        [2, 3],
      ]) {
        await signAndVerify(tc.cluster, keys.get(suite)!, players, '2-of-3');
      }
    }
  });

  it('decapsulation by any 2 nodes opens what an @hpke/core sender sealed', async () => {
    for (const suite of KEM_SUITES) {
      await decapsulateAndOpen(tc.cluster, keys.get(suite)!, [1, 2]);
      await decapsulateAndOpen(tc.cluster, keys.get(suite)!, [2, 3]);
    }
  });

  it('refresh increases the epoch, keeps the public key, and the refreshed shares sign and decapsulate', async () => {
    for (const suite of ['secp256k1', 'hpke-x25519'] as const) {
      const before = keys.get(suite)!;
      const r = await tc.cluster.refresh({ keyId: before.keyId });
      expect(r).toEqual({ keyId: before.keyId, version: 1, epoch: before.epoch + 1 });
      for (const i of [1, 2, 3]) {
        const after = await tc.cluster.getKey(before.keyId, undefined, i);
        expect(after.epoch).toBe(before.epoch + 1);
        expect(after.publicKey).toBe(before.publicKey);
        // New shares: the verifying shares changed.
        expect(after.publicPackage.verifyingShares).not.toEqual(before.publicPackage.verifyingShares);
      }
      if (suite === 'secp256k1') await signAndVerify(tc.cluster, before, [1, 3], 'after refresh');
      else await decapsulateAndOpen(tc.cluster, before, [1, 3]);
    }
  });

  it('a threshold above the node count is a clear BAD_PARAMETERS error, from the SDK and from a node', async () => {
    const e = await rejectionOf(tc.cluster.keygen({ suite: 'ed25519', threshold: 4 }));
    expect(e).toBeInstanceOf(TesseraClientError);
    expect(e.code).toBe('BAD_PARAMETERS');
    expect(e.message).toMatch(/threshold 4 is above the node count 3/);
    // A caller that skips the SDK check gets the same answer from the node itself.
    const direct = await rejectionOf(
      tc.client(1).join({ operation: 'keygen', sessionId: '00'.repeat(16), keyId: 'too-high', suite: 'ed25519', threshold: 4, exportable: false }),
    );
    expect(direct).toMatchObject({ code: 'BAD_PARAMETERS', status: 400 });
    expect(direct.message).toMatch(/threshold 4 is above the node count 3/);
    await expect(tc.cluster.getKey('too-high')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('keygen with an unknown suite is a clear error, from the SDK and from a node', async () => {
    const e = await rejectionOf(tc.cluster.keygen({ suite: 'rsa-2048', keyId: 'no-such-suite' }));
    expect(e.code).toBe('UNKNOWN_SUITE');
    expect(e.message).toMatch(/unknown suite "rsa-2048"/);
    const direct = await rejectionOf(
      tc.client(1).join({ operation: 'keygen', sessionId: '00'.repeat(16), keyId: 'no-such-suite', suite: 'rsa-2048', threshold: 2, exportable: false }),
    );
    expect(direct).toMatchObject({ code: 'BAD_INPUT', status: 400 });
    expect(direct.message).toMatch(/suite/);
    await expect(tc.cluster.getKey('no-such-suite')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('two concurrent runs of 50 signatures each (ed25519 and secp256k1) all succeed and verify', async () => {
    const run = async (key: KeyInfo) => {
      const results: { message: Uint8Array; signature: string; players: number[] }[] = [];
      const subsets = [
        [1, 2],
        [1, 3],
        [2, 3],
      ];
      for (let k = 0; k < 50; k++) {
        const message = message32(`concurrent ${key.suite} ${k}`);
        const players = subsets[k % 3]!;
        const { signature } = await tc.cluster.sign({ keyId: key.keyId, message, players });
        results.push({ message, signature, players });
      }
      return results;
    };
    const [ed, secp] = await Promise.all([run(keys.get('ed25519')!), run(keys.get('secp256k1')!)]);
    for (const [key, results] of [
      [keys.get('ed25519')!, ed],
      [keys.get('secp256k1')!, secp],
    ] as const) {
      expect(results).toHaveLength(50);
      for (const r of results) expect(verifySignature(key.suite, hexToBytes(r.signature), r.message, hexToBytes(key.publicKey))).toBe(true);
      // Fresh nonces every time: no two signatures share R.
      const rs = new Set(results.map((r) => r.signature.slice(0, key.suite === 'ed25519' ? 64 : 66)));
      expect(rs.size).toBe(50);
    }
  }, 150_000);
});

describe('3-of-5 cluster', () => {
  let tc: TestCluster;
  let keys: Map<string, KeyInfo>;
  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 5, threshold: 3 });
  }, 120_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('DKG works for every suite and gives the standard public-key encodings', async () => {
    keys = await keygenAll(tc.cluster, 3, 5);
  }, 90_000);

  it('a 3-subset signs with every signing suite; signatures verify independently', async () => {
    const subsets = [
      [1, 3, 5],
      [2, 4, 5],
      [1, 2, 3],
      [3, 4, 5],
    ];
    for (const [k, suite] of SIGNING_SUITES.entries()) await signAndVerify(tc.cluster, keys.get(suite)!, subsets[k]!, '3-of-5');
  });

  it('a 3-subset decapsulates what an @hpke/core sender sealed', async () => {
    await decapsulateAndOpen(tc.cluster, keys.get('hpke-x25519')!, [2, 3, 5]);
    await decapsulateAndOpen(tc.cluster, keys.get('hpke-p256')!, [1, 4, 5]);
  });

  it('two players are not enough at threshold 3', async () => {
    const e = await rejectionOf(tc.cluster.sign({ keyId: keys.get('ed25519')!.keyId, message: message32('too few'), players: [1, 2] }));
    expect(e.code).toBe('BAD_PARAMETERS');
  });
});
