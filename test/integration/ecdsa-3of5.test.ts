/**
 * Threshold ECDSA on a 3-of-5 cluster (issue 12, "Done when": t-of-n beyond 2-of-3): one 5-node
 * cluster, an ecdsa-secp256k1 and an ecdsa-p256 key by DKG with DKLs23's pairwise setup, and EVERY one
 * of the ten 3-subsets signs with each. Every signature verifies in node:crypto (OpenSSL; DER and IEEE
 * P1363) and, for secp256k1, in libsecp256k1 (tiny-secp256k1), whose public-key recovery with the
 * response's recovery id gives the group key. The node's own verify route takes both encodings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../sdk/client.js';
import { bytesToHex, message32, startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ECDSA_SUITES, expectStandardEcdsa, subsets } from '../helpers/ecdsa.js';

describe('threshold ECDSA (DKLs23) on a 3-of-5 cluster', () => {
  let tc: TestCluster;
  const keys: Record<string, KeyInfo> = {};

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 5, threshold: 3, logLevel: 'warn' });
    for (const suite of ECDSA_SUITES) keys[suite] = await tc.cluster.keygen({ suite, keyId: `e5-${suite}` });
  }, 240_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('the keys are 3-of-5 ECDSA keys with a SEC 1 compressed group key', () => {
    expect(subsets(5, 3)).toHaveLength(10);
    for (const suite of ECDSA_SUITES) {
      expect(keys[suite]).toMatchObject({ suite, threshold: 3, parties: 5 });
      expect(keys[suite]!.publicKey).toMatch(/^0[23][0-9a-f]{64}$/);
    }
  });

  for (const suite of ECDSA_SUITES) {
    it(`${suite}: every one of the ten 3-subsets signs; node:crypto (DER, P1363)${suite === 'ecdsa-secp256k1' ? ' and tiny-secp256k1 with recovery' : ''} verify under the group key`, async () => {
      const signed: string[] = [];
      for (const players of subsets(5, 3)) {
        const message = message32(`${suite} 3-of-5 ${players.join(',')}`);
        const r = await tc.cluster.sign({ keyId: `e5-${suite}`, message, players });
        expectStandardEcdsa(suite, r, message, keys[suite]!.publicKey);
        signed.push(r.signature);
        // The node's verify route (a signer's node, and one outside the subset) takes both encodings.
        const outside = [1, 2, 3, 4, 5].find((i) => !players.includes(i))!;
        for (const [node, signature] of [[players[0]!, r.signature], [outside, r.der!]] as const) {
          expect((await tc.client(node).verify(`e5-${suite}`, { message: bytesToHex(message), signature })).valid).toBe(true);
        }
      }
      expect(new Set(signed).size).toBe(10);
    }, 600_000);
  }
});
