/**
 * Threshold ECDSA on a live cluster (issue 12 items 1, 2 and 4): the suites ecdsa-secp256k1 and
 * ecdsa-p256, keys made by the DKG with DKLs23's pairwise setup, signed by DKLs23 (core/ecdsa/).
 *
 * - 2-of-3 keys sign on every 2-subset; every signature verifies in node:crypto (OpenSSL: DER, and
 *   IEEE P1363 for the compact form) and, for secp256k1, in libsecp256k1 (tiny-secp256k1), whose
 *   public-key recovery with the returned recovery id gives the group key; signatures are low-s;
 * - a prehashed digest (Keccak-256 here) signs as the digest itself;
 * - the verify route accepts the compact and the DER form;
 * - BIP-32: an ecdsa-secp256k1 key's child for a path equals @scure/bip32's from the xpub, and
 *   signatures under the child verify;
 * - after a refresh (new shares and a new pairwise setup) every 2-subset still signs under the same key;
 * - bad input: `prehashed` on a FROST key, a digest of the wrong length: clear errors, no session;
 * - the CLI: keygen, sign (compact, DER, recovery id), sign --prehashed, verify of both encodings.
 */
import { verify as nodeVerify } from 'node:crypto';
import { HDKey } from '@scure/bip32';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { recover as tinyRecover, verify as tinyVerify } from 'tiny-secp256k1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../sdk/client.js';
import { tessera, type CliResult } from '../helpers/cli.js';
import { expectStandardEcdsa, nodePublicKey } from '../helpers/ecdsa.js';
import { bytesToHex, hexToBytes, message32, rejectionOf, startTestCluster, type TestCluster } from '../helpers/cluster.js';

function oneJsonObject(r: CliResult): Record<string, unknown> {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const SUBSETS = [
  [1, 2],
  [1, 3],
  [2, 3],
] as const;

describe('threshold ECDSA (DKLs23) on a 2-of-3 cluster', () => {
  let tc: TestCluster;
  const keys: Record<string, KeyInfo> = {};

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    for (const suite of ['ecdsa-secp256k1', 'ecdsa-p256']) keys[suite] = await tc.cluster.keygen({ suite, keyId: `e-${suite}` });
  }, 180_000);

  afterAll(async () => {
    await tc?.close();
  });

  it('key info: the ECDSA scheme, a SEC 1 compressed key, a chain code and xpub for secp256k1 only', () => {
    expect(keys['ecdsa-secp256k1']!.scheme).toMatch(/threshold ECDSA \(DKLs23\)/);
    expect(keys['ecdsa-p256']!.scheme).toMatch(/threshold ECDSA \(DKLs23\)/);
    for (const k of Object.values(keys)) expect(k.publicKey).toMatch(/^0[23][0-9a-f]{64}$/);
    expect(keys['ecdsa-secp256k1']!.xpub).toMatch(/^xpub/);
    expect(keys['ecdsa-p256']!.chainCode).toBeUndefined();
  });

  for (const suite of ['ecdsa-secp256k1', 'ecdsa-p256'] as const) {
    it(`${suite}: every 2-subset signs; node:crypto${suite === 'ecdsa-secp256k1' ? ' and tiny-secp256k1 (with recovery)' : ''} verify`, async () => {
      for (const players of SUBSETS) {
        const message = message32(`${suite} ${players.join(',')}`);
        const r = await tc.cluster.sign({ keyId: `e-${suite}`, message, players: [...players] });
        expectStandardEcdsa(suite, r, message, keys[suite]!.publicKey);
        // The node's own verify route takes both encodings.
        for (const signature of [r.signature, r.der!]) {
          const v = await tc.client(players[0]).verify(`e-${suite}`, { message: bytesToHex(message), signature });
          expect(v.valid).toBe(true);
        }
      }
    }, 120_000);
  }

  it('ecdsa-secp256k1: a prehashed Keccak-256 digest is signed as is (Ethereum style)', async () => {
    const digest = keccak_256(new TextEncoder().encode('an Ethereum-style message'));
    const r = await tc.cluster.sign({ keyId: 'e-ecdsa-secp256k1', message: digest, prehashed: true });
    const compact = hexToBytes(r.signature);
    expect(tinyVerify(digest, hexToBytes(keys['ecdsa-secp256k1']!.publicKey), compact, true)).toBe(true);
    expect(bytesToHex(tinyRecover(digest, compact, r.recoveryId as 0 | 1 | 2 | 3, true)!)).toBe(keys['ecdsa-secp256k1']!.publicKey);
    expect((await tc.client(1).verify('e-ecdsa-secp256k1', { message: bytesToHex(digest), signature: r.signature, prehashed: true })).valid).toBe(true);
    // Not the same as signing SHA-256 of the digest bytes.
    expect((await tc.client(1).verify('e-ecdsa-secp256k1', { message: bytesToHex(digest), signature: r.signature })).valid).toBe(false);
  }, 60_000);

  it('BIP-32: the child of a path equals @scure/bip32\'s from the xpub, and signs under it', async () => {
    const reference = HDKey.fromExtendedKey(keys['ecdsa-secp256k1']!.xpub!);
    const path = 'm/0/5';
    const child = await tc.cluster.childKey('e-ecdsa-secp256k1', { path });
    expect(child.publicKey).toBe(bytesToHex(reference.derive(path).publicKey!));
    const message = message32('child signature');
    const r = await tc.cluster.sign({ keyId: 'e-ecdsa-secp256k1', message, players: [2, 3], path });
    expectStandardEcdsa('ecdsa-secp256k1', r, message, child.publicKey);
  }, 60_000);

  it('after a refresh every 2-subset still signs under the same key', async () => {
    const before = keys['ecdsa-p256']!;
    await tc.cluster.refresh({ keyId: 'e-ecdsa-p256' });
    const after = await tc.cluster.getKey('e-ecdsa-p256');
    expect(after.epoch).toBe(before.epoch + 1);
    expect(after.publicKey).toBe(before.publicKey);
    for (const players of SUBSETS) {
      const message = message32(`after refresh ${players.join(',')}`);
      const r = await tc.cluster.sign({ keyId: 'e-ecdsa-p256', message, players: [...players] });
      expectStandardEcdsa('ecdsa-p256', r, message, before.publicKey);
    }
  }, 120_000);

  it('bad input: prehashed on a FROST key, a digest of the wrong length', async () => {
    await tc.cluster.keygen({ suite: 'p256', keyId: 'e-frost-p256' });
    const frost = await rejectionOf(tc.cluster.sign({ keyId: 'e-frost-p256', message: message32('x'), prehashed: true }));
    expect(frost.message).toMatch(/prehashed/);
    const short = await rejectionOf(tc.cluster.sign({ keyId: 'e-ecdsa-p256', message: new Uint8Array(8), prehashed: true }));
    expect(short.message).toMatch(/16\.\.64 bytes/);
  }, 60_000);

  it('the CLI: keygen, sign and verify an ecdsa-p256 key; sign --prehashed; a FROST key refuses --prehashed', async () => {
    const env = { TESSERA_CLUSTER: tc.clusterFile };
    const made = oneJsonObject(await tessera(['keygen', '--suite', 'ecdsa-p256', '--key-id', 'e-cli', '--json'], env));
    expect(made.scheme).toMatch(/ECDSA/);
    const message = Buffer.from('signed by the CLI');
    const signed = oneJsonObject(await tessera(['sign', '--key-id', 'e-cli', '--message', message.toString('hex'), '--json'], env));
    expectStandardEcdsa('ecdsa-p256', signed as { signature: string; der: string; recoveryId: number }, message, String(made.publicKey));
    for (const signature of [signed.signature, signed.der]) {
      const v = await tessera(['verify', '--key-id', 'e-cli', '--message', message.toString('hex'), '--signature', String(signature), '--json'], env);
      expect(oneJsonObject(v).valid).toBe(true);
    }
    const digest = sha256(message);
    const pre = oneJsonObject(await tessera(['sign', '--key-id', 'e-cli', '--message', bytesToHex(digest), '--prehashed', '--json'], env));
    // A signature over the digest itself equals (as a verifier sees it) one over SHA-256(message).
    expect(nodeVerify('sha256', message, nodePublicKey('ecdsa-p256', hexToBytes(String(made.publicKey))), hexToBytes(String(pre.der)))).toBe(true);
    const v = await tessera(['verify', '--key-id', 'e-cli', '--message', bytesToHex(digest), '--signature', String(pre.signature), '--prehashed', '--json'], env);
    expect(oneJsonObject(v).valid).toBe(true);
    const refused = await tessera(['sign', '--key-id', 'e-frost-p256', '--message', '00', '--prehashed', '--json'], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/prehashed/);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);
});
