/**
 * Resharing (issue 13, "Done when", first two items) on one real 7-node cluster (sdk/dev.ts processes).
 *
 * Every suite's key is made on all seven nodes, then moved along
 *   2-of-3 on 1,2,3 -> 3-of-5 on 3,4,5,6,7 (overlapping) -> 2-of-4 on 1,2,3,4 (overlapping)
 *   -> 2-of-3 on 5,6,7 (disjoint from the committee before),
 * and at every step: the public key is the original one; two different t-subsets of the new committee
 * sign, verified outside Tessera (node:crypto for ed25519 and ECDSA, libsecp256k1 through tiny-secp256k1
 * for BIP-340 and ecdsa-secp256k1 with recovery, the RFC 9591 verify for FROST secp256k1/P-256); an HPKE
 * key decapsulates an @hpke/core sender's encapsulation (the sender's ciphertext opens with it).
 * The steps exercise every role: dealers that stay, dealers that leave, old holders that stay as plain
 * receivers, nodes that join, and old holders outside the session (handed the certificate, they erase).
 *
 * Old shares are dead afterwards: a node out of the committee holds no record of the key any more; t
 * nodes of an old committee cannot sign; removed nodes that are down block nothing; and the sealed
 * share a removed node held before is in none of its LevelDB data files, both for a dealer that left
 * (erased at its commit) and for an old holder outside the session (erased on the handoff).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { Packr } from 'msgpackr';
import { SUITE_IDS, getSuite } from '../../core/suites.js';
import { shareRecordKey, storageLocation } from '../../node/store/storage.js';
import { RECORD_TAG_LENGTH } from '../../node/store/record-auth.js';
import type { KeyInfo } from '../../sdk/client.js';
import { hexToBytes, hpkeOpenWithSecret, hpkeSeal, message32, rejectionOf, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';
import { expectStandardEcdsa } from '../helpers/ecdsa.js';
import { readEnvelope } from '../../node/store/envelope.js';

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

/** The chain of committees, each [threshold, nodes]. */
const STEPS: readonly (readonly [number, readonly number[]])[] = [
  [2, [1, 2, 3]],
  [3, [3, 4, 5, 6, 7]],
  [2, [1, 2, 3, 4]],
  [2, [5, 6, 7]],
];

const keyIdOf = (suite: string) => `rs-${suite}`;

function leveldbBytes(dataDir: string): Buffer {
  const dir = storageLocation(dataDir);
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

describe('reshare: a key moves between committees of any size, same public key', () => {
  let tc: TestCluster;
  const original: Record<string, KeyInfo> = {};
  const nodeDir = (i: number) => join(tc.dir, `node-${i}`);

  /** Two different t-subsets of the committee sign (or decapsulate); everything checked outside Tessera. */
  async function expectWorks(suite: string, threshold: number, nodes: readonly number[], label: string): Promise<void> {
    const keyId = keyIdOf(suite);
    const pk = hexToBytes(original[suite]!.publicKey);
    const subsets = [nodes.slice(0, threshold), nodes.slice(-threshold)];
    const kind = getSuite(suite as never).kind;
    for (const players of subsets) {
      if (kind === 'kem') {
        const plaintext = new TextEncoder().encode(`${label} ${players.join(',')}`);
        const sealed = await hpkeSeal(suite, pk, plaintext);
        const { sharedSecret } = await tc.cluster.decapsulate({ keyId, enc: sealed.enc, players: [...players] });
        expect(Buffer.from(hpkeOpenWithSecret(suite, hexToBytes(sharedSecret), sealed)).toString(), `${suite} ${label} ${players}`).toBe(Buffer.from(plaintext).toString());
      } else {
        const message = message32(`${suite} ${label} ${players.join(',')}`);
        const r = await tc.cluster.sign({ keyId, message, players: [...players] });
        expect(verifySignature(suite, hexToBytes(r.signature), message, pk), `${suite} ${label} ${players}`).toBe(true);
        if (suite === 'ecdsa-secp256k1' || suite === 'ecdsa-p256') expectStandardEcdsa(suite, r, message, original[suite]!.publicKey);
      }
    }
  }

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 7, threshold: 2, logLevel: 'warn', readyTimeoutMs: 120_000 });
    // Every suite's keygen at once, as each step's reshares run (the seven nodes' rounds overlap).
    const made = await Promise.all(SUITE_IDS.map((suite) => tc.cluster.keygen({ suite, keyId: keyIdOf(suite) })));
    SUITE_IDS.forEach((suite, k) => (original[suite] = made[k]!));
  }, 300_000);

  afterAll(async () => {
    await tc?.close();
  });

  STEPS.forEach(([threshold, nodes], step) => {
    it(`step ${step + 1}: every suite reshares to ${threshold}-of-${nodes.length} on nodes ${nodes.join(',')}; same public key; the new committee signs / decapsulates`, async () => {
      const results = await Promise.all(SUITE_IDS.map((suite) => tc.cluster.reshare(keyIdOf(suite), { threshold, nodes: [...nodes] }))).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n${tc.logs(20)}`);
      });
      for (const [k, suite] of SUITE_IDS.entries()) {
        const r = results[k]!;
        expect(r, suite).toMatchObject({ keyId: keyIdOf(suite), publicKey: original[suite]!.publicKey, threshold, nodes: [...nodes] });
        expect(r.epoch).toBe(r.previous.epoch + 1);
        // Every old holder outside the session erased its share on the handoff.
        for (const h of r.handoff) expect(h, `${suite} handoff`).toMatchObject({ outcome: 'erased' });
        // Nodes outside the committee hold no record of the key; nodes inside hold the new package.
        for (let i = 1; i <= 7; i++) {
          if (nodes.includes(i)) expect((await tc.client(i).getKey(keyIdOf(suite))).publicKey, `${suite} node ${i}`).toBe(original[suite]!.publicKey);
          else expect(await rejectionOf(tc.client(i).getKey(keyIdOf(suite))), `${suite} node ${i}`).toMatchObject({ code: 'NOT_FOUND' });
        }
      }
      for (const suite of SUITE_IDS) await expectWorks(suite, threshold, nodes, `step ${step + 1}`);
    }, 300_000);
  });

  it('old shares are dead: t nodes of an old committee cannot sign; a removed node that is down blocks nothing; its old ciphertext is in no data file', async () => {
    const suite = 'ed25519';
    const keyId = keyIdOf(suite);
    // Nodes 1 and 2 held 2-of-4 shares before the last step: together they are t of that committee.
    expect(await rejectionOf(tc.cluster.sign({ keyId, message: message32('old pair'), players: [1, 2] }))).toMatchObject({ code: expect.stringMatching(/NOT_FOUND|BAD_PARAMETERS|BAD_INPUT/) });

    // Move the key back to 1,2,3 and read the sealed shares of nodes 1 and 2 while they are stopped. Then
    // move it away with dealers 2 and 3: node 2 leaves as a dealer (erased at its commit), node 1 was
    // not a player (erased when the SDK hands it the certificate).
    await tc.cluster.reshare(keyId, { threshold: 2, nodes: [1, 2, 3] });
    await Promise.all([tc.dev.kill(1), tc.dev.kill(2)]);
    const ciphertexts = new Map<number, Buffer>();
    for (const i of [1, 2]) {
      const db = new Level<string, Uint8Array>(storageLocation(nodeDir(i)), { keyEncoding: 'utf8', valueEncoding: 'view' });
      await db.open();
      try {
        const raw = (await db.get(shareRecordKey('default', keyId, 1)))!;
        // The envelope's body (node/store/envelope.ts): the share's own ciphertext, random, so found verbatim.
        ciphertexts.set(i, Buffer.from(readEnvelope(packr.unpack(raw.subarray(0, raw.length - RECORD_TAG_LENGTH)) as { nonce: Uint8Array; ct: Uint8Array }).body));
      } finally {
        await db.close();
      }
      expect(leveldbBytes(nodeDir(i)).includes(ciphertexts.get(i)!), `control: node ${i}'s ciphertext is found before`).toBe(true);
    }
    tc.dev.start(1);
    await tc.restart(2);
    const away = await tc.cluster.reshare(keyId, { threshold: 2, nodes: [4, 5, 6], dealers: [2, 3] });
    expect(away.nodes).toEqual([4, 5, 6]);
    expect(away.handoff).toEqual([{ node: 1, outcome: 'erased' }]);

    // Nodes 1 and 2 are down: the key they left signs without them, and a reshare without them commits.
    await Promise.all([tc.dev.kill(1), tc.dev.kill(2)]);
    await expectWorks(suite, 2, [4, 5, 6], 'nodes 1 and 2 down');
    await tc.cluster.reshare(keyId, { threshold: 2, nodes: [5, 6, 7] });
    await expectWorks(suite, 2, [5, 6, 7], 'nodes 1 and 2 still down');
    for (const i of [1, 2]) expect(leveldbBytes(nodeDir(i)).includes(ciphertexts.get(i)!), `node ${i}'s old ciphertext is in no data file`).toBe(false);
    tc.dev.start(1);
    await tc.restart(2);
    for (const i of [1, 2]) expect(await rejectionOf(tc.client(i).getKey(keyId))).toMatchObject({ code: 'NOT_FOUND' });
  }, 300_000);

  it("after a reshare, rotation, refresh and lifecycle transitions run on the key's committee only", async () => {
    const suite = 'secp256k1';
    const keyId = keyIdOf(suite); // on 5,6,7 since step 4
    const rotated = await tc.cluster.rotate({ keyId });
    expect(rotated).toMatchObject({ version: 2, previousVersion: 1 });
    const pk2 = hexToBytes(rotated.publicKey);
    for (const i of [5, 6, 7]) expect((await tc.client(i).getKey(keyId, 2)).publicPackage.indices, `node ${i}`).toEqual([5, 6, 7]);
    for (const i of [1, 2, 3, 4]) expect(await rejectionOf(tc.client(i).getKey(keyId, 2)), `node ${i}`).toMatchObject({ code: 'NOT_FOUND' });
    const message = message32('rotated on the committee');
    const signed = await tc.cluster.sign({ keyId, message, players: [6, 7] });
    expect(verifySignature(suite, hexToBytes(signed.signature), message, pk2)).toBe(true);
    expect((await tc.cluster.refresh({ keyId })).epoch).toBe(1);
    expect(await tc.cluster.archive(keyId, 1)).toMatchObject({ version: 1, state: 'archived', publicKey: original[suite]!.publicKey });
  }, 120_000);
});
