/**
 * core/ecdsa/setup.ts (the pairwise setup of a threshold ECDSA key, run for all peers at once) and
 * core/ecdsa/session.ts (DKLs23 signing over point-to-point messages with the echo of round 1):
 * - three parties run the five setup rounds; the encoded setups (what the store seals) decode and sign
 *   on every 2-subset, and the signature verifies in node:crypto;
 * - the stored encoding is strict (wrong peer count, trailing bytes, another curve);
 * - a signer that sends different round-1 commitments to different signers makes the others abort at
 *   the echo, naming no one;
 * - a message of the setup that is changed makes the setup fail, naming no one.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { ecdsaCombine, ecdsaPresign, ecdsaRound1, ecdsaRound2, ecdsaRound3, ecdsaSessionId } from '../../core/ecdsa/session.js';
import { decodePairwiseSetup, ecdsaSigningKey, wipeEcdsaSigningKey } from '../../core/ecdsa/setup.js';
import { runPairwiseSetup } from '../helpers/ecdsa.js';
import type { EcdsaCurveName } from '../../core/ecdsa/signature.js';
import { split } from '../../core/shamir.js';
import { ECDSA_P256, ECDSA_SECP256K1 } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';

function keyShares(curve: EcdsaCurveName, t: number, n: number, pairwise: Map<number, Uint8Array>): KeyShare[] {
  const suite = curve === 'P-256' ? ECDSA_P256 : ECDSA_SECP256K1;
  const { group } = suite;
  const x = group.randomScalar();
  const { shares } = split(group, x, t, n);
  const publicKey = {
    suite: suite.id,
    threshold: t,
    parties: n,
    epoch: 0,
    commitments: [group.pointToBytes(group.mulBase(x))],
    verifyingShares: shares.map((s) => group.pointToBytes(group.mulBase(s))),
  };
  return shares.map((s, k) => ({ publicKey, secret: { suite: suite.id, index: k + 1, epoch: 0, value: group.scalarToBytes(s), pairwise: pairwise.get(k + 1)! } }));
}

/** Sign `digest` with `signers`; `equivocate` makes that signer send another commitment to its first peer. */
function sign(curve: EcdsaCurveName, keys: KeyShare[], signers: number[], digest: Uint8Array, equivocate?: number) {
  const sid = ecdsaSessionId(randomBytes(16), randomBytes(32));
  const sk = new Map(signers.map((i) => [i, ecdsaSigningKey(curve, keys[i - 1]!)]));
  try {
    const r1 = new Map(signers.map((i) => [i, ecdsaRound1(sk.get(i)!, sid, signers)]));
    const in1 = new Map(signers.map((i) => [i, new Map(signers.filter((j) => j !== i).map((j) => {
      const m = r1.get(j)!.out.get(i)!;
      const first = signers.find((x) => x !== j)!;
      return [j, equivocate === j && i === first ? { ...m, commitment: randomBytes(32) } : m];
    }))]));
    const r2 = new Map(signers.map((i) => [i, ecdsaRound2(r1.get(i)!.state, in1.get(i)!)]));
    const presigs = new Map<number, ReturnType<typeof ecdsaPresign>>();
    const errors = new Map<number, TesseraError>();
    for (const i of signers) {
      try {
        presigs.set(i, ecdsaPresign(r2.get(i)!.state, new Map(signers.filter((j) => j !== i).map((j) => [j, r2.get(j)!.out.get(i)!]))));
      } catch (e) {
        errors.set(i, e as TesseraError);
      }
    }
    if (errors.size) return { errors };
    const r3 = new Map(signers.map((i) => [i, ecdsaRound3(presigs.get(i)!, digest)]));
    const sigs = signers.map((i) => ecdsaCombine(r3.get(i)!.state, new Map(signers.filter((j) => j !== i).map((j) => [j, r3.get(j)!.broadcast])), r3.get(i)!.broadcast));
    return { sigs, errors };
  } finally {
    for (const k of sk.values()) wipeEcdsaSigningKey(k);
  }
}

function nodeKey(curve: EcdsaCurveName, compressed: Uint8Array) {
  const raw = (curve === 'P-256' ? p256 : secp256k1).Point.fromBytes(compressed).toBytes(false);
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: curve === 'P-256' ? 'P-256' : 'secp256k1', x: b64(raw.subarray(1, 33)), y: b64(raw.subarray(33)) }, format: 'jwk' });
}

describe('ECDSA pairwise setup and signing session', () => {
  for (const curve of ['secp256k1', 'P-256'] as const) {
    it(`${curve}: three parties set up; the stored setups sign on every 2-subset; node:crypto verifies`, () => {
      const pairwise = runPairwiseSetup(curve, 3);
      const keys = keyShares(curve, 2, 3, pairwise);
      const message = randomBytes(40);
      for (const signers of [[1, 2], [1, 3], [2, 3]]) {
        const { sigs } = sign(curve, keys, signers, sha256(message));
        expect(sigs).toBeDefined();
        for (const s of sigs!) expect(s.compact).toEqual(sigs![0]!.compact);
        expect(nodeVerify('sha256', message, nodeKey(curve, keys[0]!.publicKey.commitments[0]!), sigs![0]!.der)).toBe(true);
      }
    }, 60_000);
  }

  it('the stored encoding is strict: peer count, trailing bytes, curve', () => {
    const pairwise = runPairwiseSetup('secp256k1', 3);
    const mine = pairwise.get(1)!;
    expect(decodePairwiseSetup(mine, 'secp256k1', 1, 3).alice.size).toBe(2);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as TesseraError).code;
      }
      return 'none';
    };
    expect(code(() => decodePairwiseSetup(mine, 'secp256k1', 1, 4))).toBe(ErrorCode.BadInput);
    expect(code(() => decodePairwiseSetup(Uint8Array.of(...mine, 0), 'secp256k1', 1, 3))).toBe(ErrorCode.BadInput);
    expect(code(() => decodePairwiseSetup(mine, 'P-256', 1, 3))).toBe(ErrorCode.BadInput);
    expect(code(() => decodePairwiseSetup(mine, 'secp256k1', 2, 3))).toBe(ErrorCode.BadInput);
  }, 60_000);

  it('a signer that sends different commitments to different signers makes the others abort at the echo, naming no one', () => {
    const keys = keyShares('secp256k1', 3, 3, runPairwiseSetup('secp256k1', 3));
    const { errors } = sign('secp256k1', keys, [1, 2, 3], sha256(randomBytes(8)), 3);
    expect(errors.size).toBeGreaterThan(0);
    for (const e of errors.values()) {
      expect(e.code).toBe(ErrorCode.SessionAborted);
      expect(e.culprits).toEqual([]);
    }
  }, 60_000);

  it('a changed setup message makes the setup fail, naming no one', () => {
    let thrown: unknown;
    try {
      runPairwiseSetup('P-256', 2, (round, from, _to, b) => (round === 4 && from === 1 ? Uint8Array.from(b, (x, k) => (k === 40 ? x ^ 1 : x)) : b));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(TesseraError);
    expect((thrown as TesseraError).culprits).toEqual([]);
  }, 60_000);
});
