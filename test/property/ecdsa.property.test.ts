/**
 * Properties of threshold ECDSA (DKLs23, core/ecdsa/) in process, with the core functions only
 * (fast-check, few runs: a pairwise setup costs tens of ms to about a second):
 *   - after a refresh (core/refresh.ts among all parties, then a new pairwise setup, as the node's
 *     runRefresh does) any t shares sign under the key of epoch 0;
 *   - shares of different epochs never sign: a signer with its epoch-0 share among epoch-1 signers makes
 *     the session abort (or the combine refuse) — no signature comes out, under this key or another;
 *   - a presignature signs one digest only: signWithPresignature / ecdsaRound3 on a consumed
 *     presignature throws BadState, and so does any second use of a round state.
 */
import { verify as nodeVerify } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signWithPresignature, type Presignature } from '../../core/ecdsa/dkls23.js';
import { ecdsaCombine, ecdsaPresign, ecdsaRound1, ecdsaRound2, ecdsaRound3, ecdsaSessionId } from '../../core/ecdsa/session.js';
import { ecdsaSigningKey, wipeEcdsaSigningKey } from '../../core/ecdsa/setup.js';
import { verifyEcdsa } from '../../core/ecdsa/signature.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { KeyShare } from '../../core/types.js';
import { ensureGroupBackends } from '../../runtime/group-backend.js';
import { curveOf, nodePublicKey, signInProcess, withPairwiseSetup, type EcdsaSuiteId } from '../helpers/ecdsa.js';
import { runDkg, runRefresh } from '../helpers/run-dkg.js';
import { thrown } from '../helpers/thrown.js';

const NUM_RUNS = 3;

// The process-wide group backends, as a node selects them at start-up (libsecp256k1 for the VSOT base
// OTs of secp256k1 when installed; noble otherwise): the pairwise setups then cost what they cost in a node.
ensureGroupBackends();

const params = fc.record({
  suite: fc.constantFrom<EcdsaSuiteId>('ecdsa-secp256k1', 'ecdsa-p256'),
  shape: fc.constantFrom<[number, number]>([2, 3], [3, 4]),
  seed: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 4, maxLength: 4 }),
  message: fc.uint8Array({ minLength: 0, maxLength: 64 }),
});

/** A deterministic choice of `size` distinct parties out of 1..n from the seed. */
function choose(seed: number[], n: number, size: number): number[] {
  const pool = Array.from({ length: n }, (_, k) => k + 1);
  const out: number[] = [];
  for (let k = 0; k < size; k++) out.push(pool.splice(seed[k % seed.length]! % pool.length, 1)[0]!);
  return out.sort((a, b) => a - b);
}

/** Epoch 0 (DKG + pairwise setup) and epoch 1 (refresh + a new pairwise setup); keys[i-1] is party i's. */
function twoEpochs(suite: EcdsaSuiteId, t: number, n: number): [KeyShare[], KeyShare[]] {
  const epoch0 = withPairwiseSetup(suite, runDkg(suite, t, n));
  const epoch1 = withPairwiseSetup(suite, runRefresh(epoch0));
  return [epoch0, epoch1];
}

/** One 2-of-3 key per suite for the presignature property (it is about the presignature, not the key). */
const presignKeyCache = new Map<EcdsaSuiteId, KeyShare[]>();
function presignKeys(suite: EcdsaSuiteId): KeyShare[] {
  if (!presignKeyCache.has(suite)) presignKeyCache.set(suite, withPairwiseSetup(suite, runDkg(suite, 2, 3)));
  return presignKeyCache.get(suite)!;
}

describe('threshold ECDSA properties', () => {
  it('after a refresh (and a new pairwise setup) any t shares sign under the epoch-0 key', () => {
    fc.assert(
      fc.property(params, ({ suite, shape: [t, n], seed, message }) => {
        const curve = curveOf(suite);
        const [epoch0, epoch1] = twoEpochs(suite, t, n);
        const groupKey = epoch0[0]!.publicKey.commitments[0]!;
        expect(epoch1[0]!.publicKey.epoch).toBe(1);
        expect(Buffer.from(epoch1[0]!.publicKey.commitments[0]!).equals(Buffer.from(groupKey))).toBe(true);
        // The shares did change.
        for (let k = 0; k < n; k++) expect(Buffer.from(epoch1[k]!.secret.value).equals(Buffer.from(epoch0[k]!.secret.value))).toBe(false);

        const signers = choose(seed, n, t);
        const { sigs, errors } = signInProcess(curve, signers.map((i) => epoch1[i - 1]!), sha256(message));
        expect([...errors.values()].map((e) => e.message)).toEqual([]);
        expect([...sigs.keys()]).toEqual(signers);
        const first = sigs.get(signers[0]!)!;
        for (const s of sigs.values()) expect(Buffer.from(s.compact).equals(Buffer.from(first.compact))).toBe(true);
        expect(nodeVerify('sha256', message, nodePublicKey(suite, groupKey), first.der)).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  }, 300_000);

  it('an epoch-0 share among epoch-1 signers never signs: the session aborts or the combine refuses', () => {
    fc.assert(
      fc.property(params, ({ suite, shape: [t, n], seed, message }) => {
        const curve = curveOf(suite);
        const [epoch0, epoch1] = twoEpochs(suite, t, n);
        const groupKey = epoch1[0]!.publicKey.commitments[0]!;
        const signers = choose(seed, n, t);
        const stale = signers[seed[0]! % t]!;
        const old = epoch0[stale - 1]!;
        const current = epoch1[stale - 1]!;
        const digest = sha256(message);
        // The stale signer as it was (old package, share and setup); its old share with its current
        // package and setup; its old share with the current setup under its old package.
        const variants: KeyShare[] = [
          old,
          { publicKey: current.publicKey, secret: { ...current.secret, value: old.secret.value } },
          { publicKey: old.publicKey, secret: { ...old.secret, pairwise: current.secret.pairwise! } },
        ];
        for (const staleKey of variants) {
          const { sigs, errors } = signInProcess(curve, signers.map((i) => (i === stale ? staleKey : epoch1[i - 1]!)), digest);
          expect(errors.size).toBeGreaterThan(0);
          for (const e of errors.values()) expect(e).toBeInstanceOf(TesseraError);
          // Whatever a signer did output would be valid under the group key (combine verifies before
          // returning); with a stale share nothing comes out at all.
          for (const s of sigs.values()) expect(verifyEcdsa(s, digest, groupKey, { lowS: true })).toBe(true);
          expect(sigs.size).toBe(0);
        }
        // Control: the same signers, all at epoch 1, do sign (the aborts above came from the stale share).
        const honest = signInProcess(curve, signers.map((i) => epoch1[i - 1]!), digest);
        expect(honest.errors.size).toBe(0);
        expect(verifyEcdsa(honest.sigs.get(stale)!, digest, groupKey, { lowS: true })).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  }, 300_000);

  it('a presignature signs one digest only: a second signWithPresignature or ecdsaRound3 throws BadState; round states are used once', () => {
    fc.assert(
      fc.property(
        fc.record({
          suite: fc.constantFrom<EcdsaSuiteId>('ecdsa-secp256k1', 'ecdsa-p256'),
          seed: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 2, maxLength: 2 }),
          first: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          second: fc.uint8Array({ minLength: 16, maxLength: 64 }),
        }),
        ({ suite, seed, first, second }) => {
          const curve = curveOf(suite);
          const keys = presignKeys(suite);
          const signers = choose(seed, 3, 2);
          const sid = ecdsaSessionId(randomBytes(16), randomBytes(32));
          const sk = new Map(signers.map((i) => [i, ecdsaSigningKey(curve, keys[i - 1]!)]));
          try {
            const toMe = <M>(i: number, outs: Map<number, { out: Map<number, M> }>) => new Map(signers.filter((j) => j !== i).map((j) => [j, outs.get(j)!.out.get(i)!]));
            const r1 = new Map(signers.map((i) => [i, ecdsaRound1(sk.get(i)!, sid, signers)]));
            const r2 = new Map(signers.map((i) => [i, ecdsaRound2(r1.get(i)!.state, toMe(i, r1))]));
            // A round state is used once.
            for (const i of signers) expect(thrown(() => ecdsaRound2(r1.get(i)!.state, toMe(i, r1))).code).toBe(ErrorCode.BadState);
            const presigs = new Map<number, Presignature>(signers.map((i) => [i, ecdsaPresign(r2.get(i)!.state, toMe(i, r2))]));
            for (const i of signers) expect(thrown(() => ecdsaPresign(r2.get(i)!.state, toMe(i, r2))).code).toBe(ErrorCode.BadState);

            // First use: every signer's share for `first`, combined and valid under the group key.
            const r3 = new Map(signers.map((i) => [i, ecdsaRound3(presigs.get(i)!, first)]));
            const [a, b] = signers as [number, number];
            const sig = ecdsaCombine(r3.get(a)!.state, new Map([[b, r3.get(b)!.broadcast]]), r3.get(a)!.broadcast);
            expect(verifyEcdsa(sig, first, keys[0]!.publicKey.commitments[0]!, { lowS: true })).toBe(true);

            // Second use, through either entry point, for another digest or the same one: refused.
            for (const i of signers) {
              for (const digest of [second, first]) {
                expect(thrown(() => signWithPresignature(presigs.get(i)!, digest)).code).toBe(ErrorCode.BadState);
                expect(thrown(() => ecdsaRound3(presigs.get(i)!, digest)).code).toBe(ErrorCode.BadState);
              }
            }
          } finally {
            for (const k of sk.values()) wipeEcdsaSigningKey(k);
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  }, 300_000);
});
