/**
 * RFC 9591 Appendix E test vectors, from /work/shared/vectors/rfc9591-frost/frost-*.json
 * (cfrg/draft-irtf-cfrg-frost poc/frost-*.json). Every intermediate value the files give is
 * reproduced through core/: the dealer's polynomial and shares, each signer's nonces (from the given
 * randomness), nonce commitments, binding-factor inputs and binding factors, signature shares and the
 * final signature; the vector signature must also verify. Once through core/sign.ts and once through
 * the algebra of core/frost.ts directly.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../core/bytes.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import { combine, evalPolynomial, verifyShareAgainstCommitments } from '../../core/shamir.js';
import {
  aggregateSignature,
  bindingFactorInputs,
  bindingFactors,
  groupPublicKey,
  signRound1,
  signRound2,
  verifySignatureShares,
  type SigningNonces,
} from '../../core/sign.js';
import {
  aggregate,
  bindingFactorInputs as frostBindingFactorInputs,
  commit,
  decodeCommitmentList,
  decodePackage,
  signShare,
  signingContext,
  verifyShare,
  verifySignature,
} from '../../core/frost.js';
import { getSigningSuite, type SigningSuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';

interface FrostVector {
  config: { MAX_PARTICIPANTS: string; NUM_PARTICIPANTS: string; MIN_PARTICIPANTS: string; name: string };
  inputs: {
    participant_list: number[];
    group_secret_key: string;
    group_public_key: string;
    message: string;
    share_polynomial_coefficients: string[];
    participant_shares: { identifier: number; participant_share: string }[];
  };
  round_one_outputs: {
    outputs: {
      identifier: number;
      hiding_nonce_randomness: string;
      binding_nonce_randomness: string;
      hiding_nonce: string;
      binding_nonce: string;
      hiding_nonce_commitment: string;
      binding_nonce_commitment: string;
      binding_factor_input: string;
      binding_factor: string;
    }[];
  };
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] };
  final_output: { sig: string };
}

const DIR = '/work/shared/vectors/rfc9591-frost';
const CASES: { file: string; suite: SigningSuiteId; name: string }[] = [
  { file: 'frost-ed25519-sha512.json', suite: 'ed25519', name: 'FROST(Ed25519, SHA-512)' },
  { file: 'frost-secp256k1-sha256.json', suite: 'secp256k1', name: 'FROST(secp256k1, SHA-256)' },
  { file: 'frost-p256-sha256.json', suite: 'p256', name: 'FROST(P-256, SHA-256)' },
];

/** An rng that hands out the vector's hiding then binding randomness (RFC 9591 §4.1 nonce_generate). */
function scriptedRng(chunks: Uint8Array[]): (n: number) => Uint8Array {
  let k = 0;
  return (n: number) => {
    expect(n).toBe(32);
    expect(k).toBeLessThan(chunks.length);
    return Uint8Array.from(chunks[k++]!);
  };
}

for (const { file, suite: suiteId, name } of CASES) {
  describe(`RFC 9591 Appendix E: ${file}`, () => {
    const v: FrostVector = JSON.parse(readFileSync(`${DIR}/${file}`, 'utf8'));
    const suite = getSigningSuite(suiteId);
    const { group } = suite;
    const t = Number(v.config.MIN_PARTICIPANTS);
    const n = Number(v.config.MAX_PARTICIPANTS);
    const message = fromHex(v.inputs.message, 'message');
    const scalar = (hex: string) => group.scalarFromBytes(fromHex(hex, 'scalar'), 'scalar');

    it('is the ciphersuite we think it is', () => {
      expect(v.config.name).toBe(name);
      expect(Number(v.config.NUM_PARTICIPANTS)).toBe(v.inputs.participant_list.length);
      expect(v.inputs.participant_shares.map((s) => s.identifier)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
    });

    // Dealer (RFC 9591 Appendix C): f(x) = group_secret_key + Σ coeff_k·x^k.
    const coefficients = [scalar(v.inputs.group_secret_key), ...v.inputs.share_polynomial_coefficients.map(scalar)];
    const commitments = coefficients.map((a) => group.mulBase(a));
    const pkg: PublicKeyPackage = {
      suite: suiteId,
      threshold: t,
      parties: n,
      epoch: 0,
      commitments: commitments.map((c) => group.pointToBytes(c)),
      verifyingShares: v.inputs.participant_shares.map((s) => group.pointToBytes(group.mulBase(scalar(s.participant_share)))),
    };
    const keys = new Map<number, KeyShare>(
      v.inputs.participant_shares.map((s) => [
        s.identifier,
        { publicKey: pkg, secret: { suite: suiteId, index: s.identifier, epoch: 0, value: fromHex(s.participant_share, 'share') } },
      ]),
    );

    it('group key and shares: public key = secret·G, shares = f(i), Feldman-consistent, recombine to the secret', () => {
      expect(coefficients.length).toBe(t);
      expect(toHex(group.pointToBytes(commitments[0]!))).toBe(v.inputs.group_public_key);
      expect(toHex(groupPublicKey(suite, pkg))).toBe(v.inputs.group_public_key);
      for (const s of v.inputs.participant_shares) {
        const value = scalar(s.participant_share);
        expect(evalPolynomial(group, coefficients, BigInt(s.identifier))).toBe(value);
        expect(verifyShareAgainstCommitments(group, s.identifier, value, commitments)).toBe(true);
      }
      const signers = v.inputs.participant_list.map((i) => ({ index: i, value: scalar(v.inputs.participant_shares[i - 1]!.participant_share) }));
      expect(combine(group, signers)).toBe(coefficients[0]);
    });

    it('reproduces nonces, commitments, binding factors, signature shares and the signature', () => {
      const round1 = v.round_one_outputs.outputs;
      expect(round1.map((o) => o.identifier)).toEqual(v.inputs.participant_list);

      // Round 1 (§5.1): nonces from the given randomness, and their commitments.
      const nonces = new Map<number, SigningNonces>();
      const commits = new Map<number, SignCommitMsg>();
      for (const o of round1) {
        const rng = scriptedRng([fromHex(o.hiding_nonce_randomness, 'r'), fromHex(o.binding_nonce_randomness, 'r')]);
        const r = signRound1(suite, keys.get(o.identifier)!.secret, rng);
        expect(toHex(r.nonces.hiding)).toBe(o.hiding_nonce);
        expect(toHex(r.nonces.binding)).toBe(o.binding_nonce);
        expect(toHex(r.commit.hiding)).toBe(o.hiding_nonce_commitment);
        expect(toHex(r.commit.binding)).toBe(o.binding_nonce_commitment);
        // The commitments are the nonces times the base point.
        expect(toHex(group.pointToBytes(group.mulBase(scalar(o.hiding_nonce))))).toBe(o.hiding_nonce_commitment);
        expect(toHex(group.pointToBytes(group.mulBase(scalar(o.binding_nonce))))).toBe(o.binding_nonce_commitment);
        nonces.set(o.identifier, r.nonces);
        commits.set(o.identifier, r.commit);
      }

      // §4.4 binding factors, computed independently of noble.
      const inputs = bindingFactorInputs(suite, pkg, commits, message);
      const factors = bindingFactors(suite, pkg, commits, message);
      for (const o of round1) {
        expect(toHex(inputs.get(o.identifier)!)).toBe(o.binding_factor_input);
        expect(toHex(group.scalarToBytes(factors.get(o.identifier)!))).toBe(o.binding_factor);
      }

      // Round 2 (§5.2): signature shares.
      const shares = new Map<number, SignShareMsg>();
      for (const o of v.round_two_outputs.outputs) {
        const share = signRound2(suite, keys.get(o.identifier)!, nonces.get(o.identifier)!, commits, message);
        expect(toHex(share.share)).toBe(o.sig_share);
        // The group commitment R the signer reports: the signature's first part (§4.5, §5.3).
        expect(toHex(share.commitment!)).toBe(v.final_output.sig.slice(0, 2 * (suite.signatureLength - group.scalarLength)));
        expect(nonces.get(o.identifier)!.consumed).toBe(true);
        shares.set(o.identifier, share);
      }
      expect([...shares.keys()]).toEqual(v.inputs.participant_list);

      // §5.4 share verification and §5.3 aggregation.
      verifySignatureShares(suite, pkg, commits, message, shares);
      const sig = aggregateSignature(suite, pkg, commits, message, shares);
      expect(toHex(sig)).toBe(v.final_output.sig);

      // The vector's shares, fed in directly, aggregate to the same signature too.
      const vectorShares = new Map(v.round_two_outputs.outputs.map((o) => [o.identifier, { share: fromHex(o.sig_share, 'z') }]));
      expect(toHex(aggregateSignature(suite, pkg, commits, message, vectorShares))).toBe(v.final_output.sig);
    });

    it('core/frost.ts directly: every value of the vector, from the decoded package to the signature', () => {
      const decoded = decodePackage(suite, pkg);
      expect(toHex(decoded.publicKey)).toBe(v.inputs.group_public_key);
      const round1 = v.round_one_outputs.outputs;
      const made = new Map<number, ReturnType<typeof commit>>();
      for (const o of round1) {
        const share = keys.get(o.identifier)!.secret.value;
        const r = commit(suite, share, scriptedRng([fromHex(o.hiding_nonce_randomness, 'r'), fromHex(o.binding_nonce_randomness, 'r')]));
        expect(toHex(r.hidingNonce)).toBe(o.hiding_nonce);
        expect(toHex(r.bindingNonce)).toBe(o.binding_nonce);
        expect(toHex(r.commit.hiding)).toBe(o.hiding_nonce_commitment);
        expect(toHex(r.commit.binding)).toBe(o.binding_nonce_commitment);
        made.set(o.identifier, r);
      }
      const list = decodeCommitmentList(decoded, new Map([...made].map(([i, r]) => [i, r.commit])));
      const inputs = frostBindingFactorInputs(decoded, list, message);
      const ctx = signingContext(decoded, list, message);
      for (const o of round1) {
        expect(toHex(inputs.get(o.identifier)!)).toBe(o.binding_factor_input);
        expect(toHex(group.scalarToBytes(ctx.bindingFactors.get(o.identifier)!))).toBe(o.binding_factor);
      }
      const shares = new Map<number, Uint8Array>();
      for (const o of v.round_two_outputs.outputs) {
        const r = made.get(o.identifier)!;
        const s = scalar(v.inputs.participant_shares[o.identifier - 1]!.participant_share);
        const z = signShare(ctx, o.identifier, s, scalar(toHex(r.hidingNonce)), scalar(toHex(r.bindingNonce)));
        expect(toHex(group.scalarToBytes(z))).toBe(o.sig_share);
        expect(verifyShare(ctx, o.identifier, z)).toBe(true);
        expect(verifyShare(ctx, o.identifier, group.add(z, 1n))).toBe(false);
        shares.set(o.identifier, group.scalarToBytes(z));
      }
      const sig = aggregate(ctx, shares);
      expect(toHex(sig)).toBe(v.final_output.sig);
      expect(verifySignature(suite, sig, message, decoded.publicKey)).toBe(true);
    });

    it('the vector signature verifies under the group public key, and not over another message', () => {
      const sig = fromHex(v.final_output.sig, 'sig');
      expect(sig.length).toBe(suite.signatureLength);
      const pk = fromHex(v.inputs.group_public_key, 'pk');
      expect(suite.verify(sig, message, pk)).toBe(true);
      expect(suite.verify(sig, Uint8Array.of(...message, 0), pk)).toBe(false);
    });
  });
}
