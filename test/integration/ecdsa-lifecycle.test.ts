/**
 * Threshold ECDSA keys through import, export, refresh, rotation and the lifecycle (issue 12 item 4),
 * with two real 2-of-3 clusters A and B (separate processes, ports and data dirs):
 *
 * - an external secp256k1 and P-256 private key (made by node:crypto; its raw scalar is the JWK `d`)
 *   goes into B through the SDK's splitAndWrap as suite ecdsa-secp256k1 / ecdsa-p256, and B's
 *   signatures verify in node:crypto under the ORIGINAL key pair's public key object; exported again to
 *   an external wrapping key and combined, it gives back the same scalar;
 * - an exportable ECDSA key of A, exported to B's import keys and imported on B (B runs a new pairwise
 *   setup), signs on B under A's public key, and A still signs; a refresh on B keeps the key;
 * - rotate: the new version is a new key and signs; the retired version refuses to sign but its old
 *   signatures still verify at the node; archive refuses verify too, activate brings the version back
 *   (it signs again), and destroy (after retire) refuses sign and verify while the public key stays
 *   readable, so the old signature still verifies in node:crypto.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, randomBytes, verify as nodeVerify } from 'node:crypto';
import { generateWrappingKeyPair, splitAndWrap, unwrapAndCombine } from '../../sdk/client.js';
import { bytesToHex, hexToBytes, message32, rejectionOf, startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ECDSA_SUITES, compressedOf, expectStandardEcdsa, nodePublicKey } from '../helpers/ecdsa.js';

const NAMED_CURVE = { 'ecdsa-secp256k1': 'secp256k1', 'ecdsa-p256': 'prime256v1' } as const;

describe('threshold ECDSA keys: import, export, refresh, rotate and lifecycle', () => {
  let A: TestCluster;
  let B: TestCluster;
  let importKeysB: Uint8Array[];

  beforeAll(async () => {
    A = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'warn' });
    B = await startTestCluster({ nodes: 3, threshold: 2, logLevel: 'warn' });
    importKeysB = (await B.cluster.importKeys()).map((k) => hexToBytes(k.publicKey));
  }, 240_000);

  afterAll(async () => {
    await Promise.all([A?.close(), B?.close()]);
  });

  for (const suite of ECDSA_SUITES) {
    it(`${suite}: an external private key imported with splitAndWrap signs under its own public key (node:crypto); export + combine gives its scalar`, async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: NAMED_CURVE[suite] });
      const d = Uint8Array.from(Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'));
      expect(d.length).toBe(32);
      const keyId = `ext-${suite}`;
      const bundle = await splitAndWrap(d, suite, 2, 3, importKeysB, { keyId });
      const key = await B.cluster.importKey({ bundle, exportable: true });
      expect(key).toMatchObject({ keyId, suite, version: 1, publicKey: compressedOf(suite, publicKey) });

      for (const players of [[1, 2], [2, 3]]) {
        const message = randomBytes(57);
        const r = await B.cluster.sign({ keyId, message, players });
        // The original key pair's own public key object, not one rebuilt from the cluster's answer.
        expect(nodeVerify('sha256', message, publicKey, hexToBytes(r.der!))).toBe(true);
        expectStandardEcdsa(suite, r, message, key.publicKey, publicKey);
      }

      // Out to an external store and back together: the same scalar d.
      const external = await generateWrappingKeyPair();
      const exported = await B.cluster.exportKey({ keyId, wrappingKeys: [external.publicKey] });
      expect(exported).toMatchObject({ suite, publicKey: key.publicKey });
      const combined = await unwrapAndCombine(exported, [external]);
      expect(bytesToHex(combined.scalar)).toBe(bytesToHex(d));
      combined.scalar.fill(0);
    }, 240_000);
  }

  for (const suite of ECDSA_SUITES) {
    it(`${suite}: a key of A exported and imported on B signs on B under A's public key; A still signs; a refresh on B keeps the key`, async () => {
      const keyId = `moved-${suite}`;
      const keyA = await A.cluster.keygen({ suite, keyId, exportable: true });
      const bundle = await A.cluster.exportKey({ keyId, wrappingKeys: importKeysB });
      expect(bundle).toMatchObject({ keyId, suite, threshold: 2, parties: 3, publicKey: keyA.publicKey });
      const keyB = await B.cluster.importKey({ bundle });
      expect(keyB).toMatchObject({ keyId, suite, publicKey: keyA.publicKey, exportable: false });

      for (const [cluster, players] of [[B, [1, 3]], [A, [2, 3]]] as const) {
        const message = message32(`${suite} moved, signed with ${players.join(',')}`);
        const r = await cluster.cluster.sign({ keyId, message, players: [...players] });
        expectStandardEcdsa(suite, r, message, keyA.publicKey);
      }

      await B.cluster.refresh({ keyId });
      const refreshed = await B.cluster.getKey(keyId);
      expect(refreshed).toMatchObject({ publicKey: keyA.publicKey, epoch: keyB.epoch + 1 });
      const message = message32(`${suite} moved and refreshed`);
      expectStandardEcdsa(suite, await B.cluster.sign({ keyId, message, players: [1, 2] }), message, keyA.publicKey);
    }, 240_000);
  }

  it('ecdsa-secp256k1 and ecdsa-p256: rotate, retire, archive, activate, destroy behave as for other suites', async () => {
    for (const suite of ECDSA_SUITES) {
      const keyId = `life-${suite}`;
      const v1 = await B.cluster.keygen({ suite, keyId });
      const m1 = message32(`${suite} v1`);
      const s1 = await B.cluster.sign({ keyId, message: m1 });
      expectStandardEcdsa(suite, s1, m1, v1.publicKey);

      // Rotate: version 2 is a new key (by DKG, with its own pairwise setup) and the default for signing.
      const rotated = await B.cluster.rotate({ keyId });
      expect(rotated).toMatchObject({ keyId, suite, version: 2, previousVersion: 1 });
      expect(rotated.publicKey).not.toBe(v1.publicKey);
      for (const i of [1, 2, 3]) expect(await B.cluster.getKey(keyId, 1, i)).toMatchObject({ state: 'retired', publicKey: v1.publicKey });
      const m2 = message32(`${suite} v2`);
      const s2 = await B.cluster.sign({ keyId, message: m2, players: [2, 3] });
      expect(s2.version).toBe(2);
      expectStandardEcdsa(suite, s2, m2, rotated.publicKey);
      expect(nodeVerify('sha256', m2, nodePublicKey(suite, hexToBytes(v1.publicKey)), hexToBytes(s2.der!))).toBe(false);

      // Retired: no new signatures; old ones still verify at the node (compact and DER).
      expect(await rejectionOf(B.cluster.sign({ keyId, message: m1, version: 1 }))).toMatchObject({
        code: 'BAD_STATE',
        message: expect.stringMatching(/version 1 is retired: sign is not allowed/),
      });
      for (const signature of [s1.signature, s1.der!]) {
        expect((await B.client(3).verify(keyId, { message: bytesToHex(m1), signature, version: 1 })).valid).toBe(true);
      }

      // Archived: nothing, not even verify; activate brings it back and it signs under its own key.
      expect(await B.cluster.archive(keyId, 1)).toMatchObject({ state: 'archived', publicKey: v1.publicKey });
      expect(await rejectionOf(B.client(1).verify(keyId, { message: bytesToHex(m1), signature: s1.signature, version: 1 }))).toMatchObject({ code: 'BAD_STATE' });
      expect(await B.cluster.activate(keyId, 1)).toMatchObject({ state: 'active' });
      const m3 = message32(`${suite} v1 again`);
      const s3 = await B.cluster.sign({ keyId, message: m3, version: 1, players: [1, 3] });
      expectStandardEcdsa(suite, s3, m3, v1.publicKey);

      // Destroy needs retired or archived first; then sign and verify are refused, the public key stays.
      expect(await rejectionOf(B.cluster.destroy(keyId, 1))).toMatchObject({ code: 'BAD_STATE', message: expect.stringMatching(/cannot go from active to destroyed/) });
      await B.cluster.retire(keyId, 1);
      expect(await B.cluster.destroy(keyId, 1)).toMatchObject({ state: 'destroyed', publicKey: v1.publicKey });
      expect(await rejectionOf(B.cluster.sign({ keyId, message: m1, version: 1 }))).toMatchObject({ code: 'BAD_STATE', message: expect.stringMatching(/destroyed/) });
      expect(await rejectionOf(B.client(2).verify(keyId, { message: bytesToHex(m1), signature: s1.signature, version: 1 }))).toMatchObject({ code: 'BAD_STATE' });
      expect(await rejectionOf(B.cluster.activate(keyId, 1))).toMatchObject({ code: 'BAD_STATE' });
      const readable = await B.cluster.getKey(keyId, 1);
      expect(readable).toMatchObject({ state: 'destroyed', publicKey: v1.publicKey });
      expect(nodeVerify('sha256', m1, nodePublicKey(suite, hexToBytes(readable.publicKey)), hexToBytes(s1.der!))).toBe(true);

      // Version 2 is untouched and still signs.
      const m4 = message32(`${suite} v2 after v1 destroyed`);
      expectStandardEcdsa(suite, await B.cluster.sign({ keyId, message: m4 }), m4, rotated.publicKey);
    }
  }, 480_000);
});
