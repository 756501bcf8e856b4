/**
 * Failover to a cluster of another size (issue 13 item 4), with real processes: a 2-of-3 cluster A and
 * a 3-of-5 cluster B (separate dev clusters, ports and data dirs), reused by every test.
 *
 * - CLI, ed25519: `tessera import-key --json` on B writes an import-keys file naming t = 3, n = 5;
 *   `tessera export --import-keys` on A writes a version 2 bundle dealt for 3-of-5; `tessera import`
 *   on B stores it under the same key id, and B's signatures (any 3 nodes) verify in node:crypto under
 *   A's public key.
 * - SDK, FROST secp256k1 and threshold ECDSA secp256k1 (whose import runs B's own pairwise setup): the
 *   same, verified with the suite's RFC 9591 verify and with node:crypto / libsecp256k1 for ECDSA.
 * - hpke-x25519: after the move, B's threshold decapsulation of an @hpke/core sender's message gives
 *   the sender's secret (the message opens).
 * - The reverse, 3-of-5 -> 2-of-3, for ed25519.
 * - A bad sub-share (sealed correctly to B's node 4, off dealer 2's committed polynomial) fails the
 *   import with BAD_SHARE naming dealer 2, and a tampered one fails naming its dealer; nothing is
 *   stored on any node. A bundle dealt for 3-of-5 is refused by the 2-of-3 cluster with a clear error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseBundle, wrapSubShare, type ResharedBundleJson } from '../../core/bundle.js';
import { getSuite } from '../../core/suites.js';
import type { Cluster } from '../../sdk/client.js';
import { bytesToHex, hexToBytes, hpkeOpenWithSecret, hpkeSeal, message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';
import { jsonOf, tessera } from '../helpers/cli.js';
import { expectStandardEcdsa } from '../helpers/ecdsa.js';

/** The key is on no node of the cluster. */
async function expectNothingStored(cluster: Cluster, keyId: string): Promise<void> {
  for (let i = 1; i <= cluster.size; i++) await expect(cluster.getKey(keyId, undefined, i)).rejects.toMatchObject({ code: 'NOT_FOUND' });
}

describe('failover to a cluster of another size', () => {
  let A: TestCluster;
  let B: TestCluster;

  beforeAll(async () => {
    // Eight processes start at once: a longer first-start deadline than the default for a loaded machine.
    const ready = { logLevel: 'warn', readyTimeoutMs: 100_000 };
    [A, B] = await Promise.all([startTestCluster({ nodes: 3, threshold: 2, ...ready }), startTestCluster({ nodes: 5, threshold: 3, ...ready })]);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([A?.close(), B?.close()]);
  });

  it('CLI, ed25519: a key of the 2-of-3 cluster, exported with the 3-of-5 cluster import-keys file, signs there under the same key id and public key', async () => {
    const keyA = await A.cluster.keygen({ suite: 'ed25519', keyId: 'moved-ed', exportable: true });

    const importKeysFile = join(B.dir, 'b-import-keys.json');
    const keysOut = await tessera(['import-key', '--json', '--cluster', B.clusterFile]);
    const file = jsonOf(keysOut);
    expect(file).toMatchObject({ threshold: 3, parties: 5 });
    expect(file.importKeys.map((k: { index: number }) => k.index)).toEqual([1, 2, 3, 4, 5]);
    await writeFile(importKeysFile, keysOut.stdout);

    const bundleFile = join(A.dir, 'moved-ed.bundle.json');
    const exported = jsonOf(await tessera(['export', '--key-id', 'moved-ed', '--import-keys', importKeysFile, '--out', bundleFile, '--json', '--cluster', A.clusterFile]));
    expect(exported).toMatchObject({ keyId: 'moved-ed', publicKey: keyA.publicKey, threshold: 3, parties: 5 });

    const imported = jsonOf(await tessera(['import', '--in', bundleFile, '--json', '--cluster', B.clusterFile]));
    expect(imported).toMatchObject({ keyId: 'moved-ed', version: 1, suite: 'ed25519', publicKey: keyA.publicKey, exportable: false });
    const keyB = await B.cluster.getKey('moved-ed');
    expect(keyB).toMatchObject({ publicKey: keyA.publicKey, threshold: 3, parties: 5 });
    for (const i of [2, 5]) expect((await B.cluster.getKey('moved-ed', undefined, i)).publicKey).toBe(keyA.publicKey);

    for (const players of [[1, 3, 5], [2, 3, 4]]) {
      const message = randomBytes(48);
      const r = await B.cluster.sign({ keyId: 'moved-ed', message, players });
      expect(verifySignature('ed25519', hexToBytes(r.signature), message, hexToBytes(keyA.publicKey))).toBe(true);
    }
    // A keeps its key (export never changes the source).
    const message = randomBytes(16);
    expect(verifySignature('ed25519', hexToBytes((await A.cluster.sign({ keyId: 'moved-ed', message })).signature), message, hexToBytes(keyA.publicKey))).toBe(true);
  }, 120_000);

  it('SDK, secp256k1 FROST and ecdsa-secp256k1: 2-of-3 -> 3-of-5, signatures verify under the original public key', async () => {
    const destination = await B.cluster.importKeysFile();
    expect(destination).toMatchObject({ threshold: 3, parties: 5 });
    for (const suite of ['secp256k1', 'ecdsa-secp256k1'] as const) {
      const keyId = `moved-${suite}`;
      const keyA = await A.cluster.keygen({ suite, keyId, exportable: true });
      const bundle = await A.cluster.exportKey({ keyId, wrappingKeys: destination.importKeys.map((k) => k.publicKey), destination: { threshold: 3, parties: 5 } });
      expect(bundle).toMatchObject({ version: 2, keyId, suite, threshold: 3, parties: 5, publicKey: keyA.publicKey });
      expect((bundle as ResharedBundleJson).dealers.map((d) => d.index)).toEqual([1, 2, 3]);
      const keyB = await B.cluster.importKey({ bundle });
      expect(keyB).toMatchObject({ keyId, suite, publicKey: keyA.publicKey, threshold: 3, parties: 5 });
      const message = message32(`${suite} on 3-of-5`);
      const r = await B.cluster.sign({ keyId, message, players: [1, 2, 5] });
      if (suite === 'ecdsa-secp256k1') expectStandardEcdsa(suite, r, message, keyA.publicKey);
      else expect(verifySignature(suite, hexToBytes(r.signature), message, hexToBytes(keyA.publicKey))).toBe(true);
    }
  }, 180_000);

  it('hpke-x25519: after the move the 3-of-5 cluster decapsulates an @hpke/core sender message to its secret', async () => {
    const destination = await B.cluster.importKeysFile();
    const keyA = await A.cluster.keygen({ suite: 'hpke-x25519', keyId: 'moved-inbox', exportable: true });
    const bundle = await A.cluster.exportKey({ keyId: 'moved-inbox', wrappingKeys: destination.importKeys.map((k) => k.publicKey), destination });
    await B.cluster.importKey({ bundle });
    const plaintext = new TextEncoder().encode('sealed to the 2-of-3 key, opened by the 3-of-5 cluster');
    const sealed = await hpkeSeal('hpke-x25519', hexToBytes(keyA.publicKey), plaintext);
    const { sharedSecret } = await B.cluster.decapsulate({ keyId: 'moved-inbox', enc: sealed.enc, players: [2, 4, 5] });
    expect(bytesToHex(hpkeOpenWithSecret('hpke-x25519', hexToBytes(sharedSecret), sealed))).toBe(bytesToHex(plaintext));
  }, 120_000);

  it('the reverse, ed25519 3-of-5 -> 2-of-3: signs on the 2-of-3 cluster under the same public key', async () => {
    const destination = await A.cluster.importKeysFile();
    expect(destination).toMatchObject({ threshold: 2, parties: 3 });
    const keyB = await B.cluster.keygen({ suite: 'ed25519', keyId: 'back-ed', exportable: true });
    const bundle = await B.cluster.exportKey({ keyId: 'back-ed', wrappingKeys: destination.importKeys.map((k) => k.publicKey), destination });
    expect(bundle).toMatchObject({ version: 2, threshold: 2, parties: 3, publicKey: keyB.publicKey });
    expect((bundle as ResharedBundleJson).source).toMatchObject({ threshold: 3, parties: 5 });
    const keyA = await A.cluster.importKey({ bundle });
    expect(keyA).toMatchObject({ keyId: 'back-ed', publicKey: keyB.publicKey, threshold: 2, parties: 3 });
    for (const players of [[1, 2], [2, 3]]) {
      const message = randomBytes(32);
      const r = await A.cluster.sign({ keyId: 'back-ed', message, players });
      expect(verifySignature('ed25519', hexToBytes(r.signature), message, hexToBytes(keyB.publicKey))).toBe(true);
    }
  }, 120_000);

  it('a key reshared onto nodes 2,4,5 of the 3-of-5 cluster moves to the 2-of-3 cluster (dealt by its committee, though the size matches)', async () => {
    const destination = await A.cluster.importKeysFile();
    const keyB = await B.cluster.keygen({ suite: 'secp256k1', keyId: 'committee-key', exportable: true });
    await B.cluster.reshare('committee-key', { threshold: 2, nodes: [2, 4, 5] });
    const bundle = (await B.cluster.exportKey({ keyId: 'committee-key', wrappingKeys: destination.importKeys.map((k) => k.publicKey), destination })) as ResharedBundleJson;
    expect(bundle).toMatchObject({ version: 2, threshold: 2, parties: 3, publicKey: keyB.publicKey });
    expect(bundle.source).toMatchObject({ threshold: 2, parties: 3, indices: [2, 4, 5] });
    expect(bundle.dealers.map((d) => d.index)).toEqual([2, 4, 5]);
    await A.cluster.importKey({ bundle });
    const message = message32('committee key on the 2-of-3 cluster');
    const r = await A.cluster.sign({ keyId: 'committee-key', message, players: [1, 3] });
    expect(verifySignature('secp256k1', hexToBytes(r.signature), message, hexToBytes(keyB.publicKey))).toBe(true);
  }, 120_000);

  it('a bad or tampered sub-share fails the import naming its dealer, and nothing is stored; a wrong-size bundle is refused', async () => {
    const destination = await B.cluster.importKeysFile();
    await A.cluster.keygen({ suite: 'ed25519', keyId: 'spoiled', exportable: true });
    const good = (await A.cluster.exportKey({ keyId: 'spoiled', wrappingKeys: destination.importKeys.map((k) => k.publicKey), destination })) as ResharedBundleJson;
    const copy = (): ResharedBundleJson => JSON.parse(JSON.stringify(good)) as ResharedBundleJson;

    // Dealer 2 (a node of A) sends node 4 a random scalar, sealed correctly to node 4's import key.
    const parsed = parseBundle(good);
    const { group } = getSuite('ed25519');
    const offPolynomial = copy();
    offPolynomial.dealers[1]!.wrappedShares[3] = await wrapSubShare(
      group.scalarToBytes(group.randomScalar()),
      { keyId: 'spoiled', keyVersion: 1, source: parsed.resharing!.source, dealer: 2, recipient: 4, target: { threshold: 3, parties: 5 }, commitments: parsed.resharing!.dealers[1]!.commitments },
      hexToBytes(destination.importKeys[3]!.publicKey),
    );
    const bad = await rejectionOf(B.cluster.importKey({ bundle: offPolynomial }));
    expect(bad.code).toBe('BAD_SHARE');
    expect(bad.message).toMatch(/dealer 2 \(source cluster node\) dealt node 4 a bad sub-share/);
    await expectNothingStored(B.cluster, 'spoiled');

    // A flipped ciphertext byte in dealer 3's sub-share for node 1: it does not open.
    const tampered = copy();
    const entry = tampered.dealers[2]!.wrappedShares[0]!;
    entry.ciphertext = entry.ciphertext.slice(0, 8) + (entry.ciphertext[8] === 'a' ? 'b' : 'a') + entry.ciphertext.slice(9);
    const spoiled = await rejectionOf(B.cluster.importKey({ bundle: tampered }));
    expect(spoiled.code).toBe('DECRYPTION_FAILED');
    expect(spoiled.message).toMatch(/sub-share of dealer 3 for node 1 does not open/);
    await expectNothingStored(B.cluster, 'spoiled');

    // Dealt for 3-of-5: the 2-of-3 cluster refuses it and says how to get one for its size.
    const wrongSize = await rejectionOf(A.cluster.importKey({ bundle: good, keyId: 'spoiled-here' }));
    expect(wrongSize.code).toBe('BAD_PARAMETERS');
    expect(wrongSize.message).toMatch(/shared among 5 parties but this cluster has 3 nodes \(the bundle carries a 3-of-5 sharing\); export the key again with this cluster's import-keys file/);

    // The good bundle still imports.
    expect(await B.cluster.importKey({ bundle: good })).toMatchObject({ keyId: 'spoiled', threshold: 3, parties: 5 });
  }, 120_000);
});
