/**
 * A mixed cluster (issue 10, item 1): one node per group backend, chosen with TESSERA_GROUP_BACKEND
 * per node process. Node 1 runs noble, node 2 the native backends (sodium-native, libsecp256k1),
 * node 3 the WASM one (tiny-secp256k1; edwards25519 has no WASM build, so noble). Each node's
 * GET /v1/node and start-up log name its backends; DKG and signing for ed25519, secp256k1 and bip340
 * work with every pair of nodes (so every pairing of backends computes one signature together), on
 * the two-round path and the presigned one, checked by independent verifiers; threshold
 * decapsulation (hpke-x25519: DLEQ proofs made on one backend, checked on another) opens an
 * @hpke/core sender's message.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../contract/http.js';
import { groupBackendNames } from '../../core/suites.js';
import { bytesToHex, hexToBytes, hpkeOpenWithSecret, hpkeSeal, message32, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

const BACKEND_OF_NODE: Record<number, string> = { 1: 'noble', 2: 'native', 3: 'wasm' };
const EXPECTED: Record<number, Record<string, string>> = {
  1: { edwards25519: 'noble', secp256k1: 'noble', 'P-256': 'noble' },
  2: { edwards25519: 'sodium-native', secp256k1: 'libsecp256k1 (native)', 'P-256': 'node:crypto (OpenSSL)' },
  3: { edwards25519: 'noble', secp256k1: 'tiny-secp256k1 (WASM)', 'P-256': 'node:crypto (OpenSSL)' },
};
const PAIRS = [
  [1, 2],
  [1, 3],
  [2, 3],
];

describe('a 2-of-3 cluster with one group backend per node', () => {
  let tc: TestCluster;
  const keys = new Map<string, KeyInfo>();
  beforeAll(async () => {
    tc = await startTestCluster({
      nodes: 3,
      threshold: 2,
      envFor: (i) => (i === 0 ? undefined : { TESSERA_GROUP_BACKEND: BACKEND_OF_NODE[i]! }),
      readyTimeoutMs: 150_000,
    });
  }, 200_000);
  afterAll(async () => {
    await tc?.close();
  });

  it('each node reports its backends in GET /v1/node and logs them at start, with no fallback warning', async () => {
    for (const i of [1, 2, 3]) {
      const info = await tc.client(i).info();
      expect(info.groupBackends, `node ${i}`).toEqual(EXPECTED[i]);
      const log = readFileSync(join(tc.dir, 'logs', `node-${i}.log`), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level: number; msg: string; groupBackends?: Record<string, string>; prefer?: string });
      expect(readFileSync(join(tc.dir, 'logs', `node-${i}.log`), 'utf8')).not.toContain('TESSERA_GROUP_BACKEND] Warning');
      const selected = log.find((l) => l.msg === 'group backends selected');
      expect(selected, `node ${i} start-up log`).toMatchObject({ level: 30, groupBackends: EXPECTED[i], prefer: BACKEND_OF_NODE[i] });
      expect(log.filter((l) => l.msg.startsWith('group backend:')), `node ${i} fallback warnings`).toEqual([]);
    }
    // This test process is an SDK process: its first NodeClient selected the native backends.
    expect(groupBackendNames()).toEqual(EXPECTED[2]);
  });

  for (const suite of ['ed25519', 'secp256k1', 'bip340'] as const) {
    it(`${suite}: DKG across the three backends, then every pair signs (two-round and presigned), verified independently`, async () => {
      const key = await tc.cluster.keygen({ suite, keyId: `mixed-${suite}`, threshold: 2 });
      expect(key).toMatchObject({ suite, threshold: 2, parties: 3 });
      keys.set(suite, key);
      for (const players of PAIRS) {
        for (const presigned of [false, true, true]) {
          // Presigned: the commitments come from each node's pool (made on its backend), fetched first.
          if (presigned) expect(await tc.cluster.warmPresignatures(key.keyId, 1, { players })).toBeGreaterThanOrEqual(1);
          const message = message32(`mixed ${suite} ${players.join(',')} ${presigned} ${Math.random()}`);
          const r = await tc.cluster.sign({ keyId: key.keyId, message, players, presigned });
          expect(r.path).toBe(presigned ? 'presigned' : 'two-round');
          expect(verifySignature(suite, hexToBytes(r.signature), message, hexToBytes(key.publicKey)), `${suite} by ${players} (${r.path})`).toBe(true);
          expect(verifySignature(suite, hexToBytes(r.signature), message32('another message'), hexToBytes(key.publicKey))).toBe(false);
        }
      }
    });
  }

  it('hpke-x25519: every pair decapsulates (DLEQ proofs across noble and sodium-native)', async () => {
    const key = await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: 'mixed-x25519', threshold: 2 });
    for (const players of PAIRS) {
      const plaintext = new TextEncoder().encode(`to ${players.join(',')}`);
      const sealed = await hpkeSeal('hpke-x25519', hexToBytes(key.publicKey), plaintext);
      const { sharedSecret } = await tc.cluster.decapsulate({ keyId: key.keyId, enc: sealed.enc, players });
      expect(bytesToHex(hpkeOpenWithSecret('hpke-x25519', hexToBytes(sharedSecret), sealed))).toBe(bytesToHex(plaintext));
    }
  });
});
