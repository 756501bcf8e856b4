import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { verifySchnorr } from 'tiny-secp256k1';
import { describe, expect, it } from 'vitest';
import { toHex, utf8ToBytes } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import {
  aggregatePrepared,
  aggregateSignature,
  bindingFactors,
  prepareAggregation,
  discardNonces,
  groupPublicKey,
  signRound1,
  signRound2,
  verifySignatureShares,
  type SigningNonces,
} from '../../core/sign.js';
import { SIGNING_SUITES, getSigningSuite, type SigningSuite } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { verifyEquivocationEvidence, type EquivocationEvidence } from '../../core/evidence.js';
import { loadIdentityEngine } from '../../core/identity.js';
import type { SignedCommitMsg, SignedShareMsg } from '../../core/messages.js';
import { signCommitSignedBytes, signSessionDiscard, signSessionRound1, signShareSignedBytes, type SignBinding } from '../../core/sign.js';
import { identityAuthenticators, runDkg, runRefresh, testAuthenticators } from '../helpers/run-dkg.js';
import { dealerKeys, runSign, simulateSignSession, type SignOutcome } from '../helpers/run-sign.js';

const MESSAGE = utf8ToBytes('tessera: pay 1 BTC to carol');
/** BIP-340 via tiny-secp256k1 takes 32-byte messages only. */
const MESSAGE32 = Uint8Array.from({ length: 32 }, (_, k) => k * 7 + 1);
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Expect `fn` to throw a TesseraError with this code (and, if given, exactly these culprits). */
function expectError(fn: () => unknown, code: ErrorCode, culprits?: number[]): TesseraError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TesseraError);
  const err = caught as TesseraError;
  expect(err.code).toBe(code);
  if (culprits) expect([...err.culprits]).toEqual(culprits);
  return err;
}

/** Independent verification: node:crypto for ed25519, tiny-secp256k1 for BIP-340, the suite otherwise. */
function verifyIndependently(suite: SigningSuite, pk: Uint8Array, message: Uint8Array, sig: Uint8Array): boolean {
  switch (suite.id) {
    case 'ed25519': {
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, pk]), format: 'der', type: 'spki' });
      return nodeVerify(null, message, key, sig);
    }
    case 'bip340':
      return verifySchnorr(message, pk, sig);
    default:
      return suite.verify(sig, message, pk);
  }
}

/** Round 1 for the given signers. */
function round1(suite: SigningSuite, keys: KeyShare[]) {
  const nonces = new Map<number, SigningNonces>();
  const commits = new Map<number, SignCommitMsg>();
  for (const k of keys) {
    const r = signRound1(suite, k.secret);
    nonces.set(k.secret.index, r.nonces);
    commits.set(k.secret.index, r.commit);
  }
  return { nonces, commits };
}

/** Both rounds, with the shares of the signers in `tamper` replaced by what it returns. */
function bothRounds(
  suite: SigningSuite,
  keys: KeyShare[],
  message: Uint8Array,
  tamper: Record<number, (s: SignShareMsg) => SignShareMsg> = {},
) {
  const { nonces, commits } = round1(suite, keys);
  const shares = new Map<number, SignShareMsg>();
  for (const k of keys) {
    const i = k.secret.index;
    const s = signRound2(suite, k, nonces.get(i)!, commits, message);
    shares.set(i, tamper[i] ? tamper[i]!(s) : s);
  }
  return { commits, shares };
}

const pick = (keys: KeyShare[], indexes: number[]) => indexes.map((i) => keys[i - 1]!);

/** Add one to a share scalar: still canonical, no longer valid. */
const plusOne = (suite: SigningSuite) => (s: SignShareMsg) => ({
  share: suite.group.scalarToBytes(suite.group.add(suite.group.scalarFromBytes(s.share, 's', true), 1n)),
});

describe('threshold signing with trusted-dealer keys, checked by an independent verifier', () => {
  for (const id of SIGNING_SUITES) {
    const suite = getSigningSuite(id);
    const message = id === 'bip340' ? MESSAGE32 : MESSAGE;
    for (const [t, n, signers] of [
      [2, 3, [1, 3]],
      [3, 5, [2, 4, 5]],
    ] as const) {
      it(`${id}: ${t}-of-${n} signs with parties ${signers.join(',')}`, () => {
        const keys = dealerKeys(id, t, n);
        const pk = groupPublicKey(suite, keys[0]!.publicKey);
        expect(pk.length).toBe(id === 'ed25519' || id === 'bip340' ? 32 : 33);
        const sig = runSign(pick(keys, [...signers]), message);
        expect(sig.length).toBe(suite.signatureLength);
        expect(verifyIndependently(suite, pk, message, sig)).toBe(true);
        expect(suite.verify(sig, message, pk)).toBe(true);
        const other = Uint8Array.from(message);
        other[0]! ^= 1;
        expect(verifyIndependently(suite, pk, other, sig)).toBe(false);
      });
    }
    it(`${id}: prepareAggregation before the shares, then aggregatePrepared, gives aggregateSignature's signature and names the same culprit`, () => {
      const keys = dealerKeys(id, 3, 5);
      const { commits, shares } = bothRounds(suite, pick(keys, [1, 3, 5]), message);
      const prepared = prepareAggregation(suite, keys[0]!.publicKey, commits, message);
      const sig = aggregatePrepared(prepared, shares);
      expect(sig).toEqual(aggregateSignature(suite, keys[0]!.publicKey, commits, message, shares));
      expect(verifyIndependently(suite, groupPublicKey(suite, keys[0]!.publicKey), message, sig)).toBe(true);
      const bad = bothRounds(suite, pick(keys, [1, 3, 5]), message, { 5: plusOne(suite) });
      expectError(() => aggregatePrepared(prepareAggregation(suite, keys[0]!.publicKey, bad.commits, message), bad.shares), ErrorCode.BadSignatureShare, [5]);
      expectError(() => aggregatePrepared(undefined as never, shares), ErrorCode.BadInput);
    });
    it(`${id}: every share reports the signature's R (SignShareMsg.commitment); a wrong or disagreeing reported R only costs the recomputation and is never blamed`, () => {
      const keys = dealerKeys(id, 3, 5);
      const pkg = keys[0]!.publicKey;
      const { commits, shares } = bothRounds(suite, pick(keys, [1, 3, 5]), message);
      const sig = aggregateSignature(suite, pkg, commits, message, shares);
      const rLength = suite.signatureLength - suite.group.scalarLength;
      for (const s of shares.values()) expect(toHex(s.commitment!)).toBe(toHex(sig.subarray(0, rLength)));
      // Every signer reports the R of another signing: the signature is the recomputed, valid one.
      const other = bothRounds(suite, pick(keys, [1, 3, 5]), message);
      const wrongR = other.shares.get(1)!.commitment!;
      const allWrong = new Map([...shares].map(([i, m]) => [i, { share: m.share, commitment: wrongR }]));
      expect(toHex(aggregateSignature(suite, pkg, commits, message, allWrong))).toBe(toHex(sig));
      expect(toHex(aggregatePrepared(prepareAggregation(suite, pkg, commits, message), allWrong))).toBe(toHex(sig));
      // Signers that disagree, a reported R of the wrong length or not bytes: the same.
      const mixed = new Map(shares).set(3, { share: shares.get(3)!.share, commitment: wrongR });
      expect(toHex(aggregateSignature(suite, pkg, commits, message, mixed))).toBe(toHex(sig));
      const short = new Map(shares).set(5, { share: shares.get(5)!.share, commitment: wrongR.subarray(1) });
      expect(toHex(aggregateSignature(suite, pkg, commits, message, short))).toBe(toHex(sig));
      const odd = new Map(shares).set(1, { share: shares.get(1)!.share, commitment: 'R' as never });
      expect(toHex(aggregateSignature(suite, pkg, commits, message, odd))).toBe(toHex(sig));
      // A bad share under a wrong reported R: the bad share's signer is named, by §5.4, and nobody else.
      const bad = new Map(allWrong).set(5, { share: plusOne(suite)(shares.get(5)!).share, commitment: wrongR });
      expectError(() => aggregateSignature(suite, pkg, commits, message, bad), ErrorCode.BadSignatureShare, [5]);
      // Shares over another message never combine, whatever R they report.
      const elsewhere = Uint8Array.from(message);
      elsewhere[0]! ^= 1;
      expectError(() => aggregateSignature(suite, pkg, commits, elsewhere, shares), ErrorCode.BadSignatureShare, [1, 3, 5]);
    });
    it(`${id}: a bad signature share is named, the honest ones are not`, () => {
      const keys = dealerKeys(id, 3, 5);
      const { commits, shares } = bothRounds(suite, pick(keys, [1, 3, 5]), message, { 3: plusOne(suite) });
      expectError(() => aggregateSignature(suite, keys[0]!.publicKey, commits, message, shares), ErrorCode.BadSignatureShare, [3]);
    });
  }

  it('bip340: odd- and even-y group keys, odd- and even-y group commitments all give valid BIP-340 signatures', () => {
    const suite = getSigningSuite('bip340');
    const { group } = suite;
    const parity = (compressed: Uint8Array) => (compressed[0] === 0x03 ? 'odd' : 'even');
    const seenKeys = new Set<string>();
    for (let attempt = 0; attempt < 64 && seenKeys.size < 2; attempt++) {
      const keys = dealerKeys('bip340', 2, 3);
      const keyParity = parity(keys[0]!.publicKey.commitments[0]!);
      if (seenKeys.has(keyParity)) continue;
      seenKeys.add(keyParity);
      const pk = groupPublicKey(suite, keys[0]!.publicKey);
      const seenR = new Set<string>();
      for (let s = 0; s < 16 && seenR.size < 2; s++) {
        const signers = pick(keys, [1, 2]);
        const { commits, shares } = bothRounds(suite, signers, MESSAGE32);
        // RFC 9591 §4.5 group commitment R = Σ D_i + ρ_i·E_i, from our own binding factors.
        const rho = bindingFactors(suite, keys[0]!.publicKey, commits, MESSAGE32);
        let R = group.identity;
        for (const [i, c] of commits) {
          R = group.addPoints(R, group.pointFromBytes(c.hiding, 'D'));
          R = group.addPoints(R, group.mulPoint(group.pointFromBytes(c.binding, 'E'), rho.get(i)!));
        }
        seenR.add(parity(group.pointToBytes(R)));
        // Share verification (with noble's even-y negations) still names exactly the bad signer.
        const tampered = new Map(shares).set(2, plusOne(suite)(shares.get(2)!));
        expectError(() => verifySignatureShares(suite, keys[0]!.publicKey, commits, MESSAGE32, tampered), ErrorCode.BadSignatureShare, [2]);
        const sig = aggregateSignature(suite, keys[0]!.publicKey, commits, MESSAGE32, shares);
        // The x-only R in the signature is the x of the group commitment.
        expect(Buffer.from(sig.subarray(0, 32)).equals(Buffer.from(group.pointToBytes(R).subarray(1)))).toBe(true);
        expect(verifySchnorr(MESSAGE32, pk, sig)).toBe(true);
      }
      expect(seenR.size).toBe(2);
    }
    expect(seenKeys.size).toBe(2);
  });
});

describe('culprits', () => {
  const suite = getSigningSuite('ed25519');
  const keys = dealerKeys('ed25519', 3, 5);
  const pkg = keys[0]!.publicKey;
  const signers = pick(keys, [1, 2, 4, 5]);

  it('one bad signature share names that signer and no honest one', () => {
    const { commits, shares } = bothRounds(suite, signers, MESSAGE, { 4: plusOne(suite) });
    expectError(() => verifySignatureShares(suite, pkg, commits, MESSAGE, shares), ErrorCode.BadSignatureShare, [4]);
    expectError(() => aggregateSignature(suite, pkg, commits, MESSAGE, shares), ErrorCode.BadSignatureShare, [4]);
  });

  it('two bad shares (one wrong, one malformed) are both named', () => {
    const { commits, shares } = bothRounds(suite, signers, MESSAGE, {
      2: plusOne(suite),
      5: () => ({ share: new Uint8Array(32).fill(0xff) }), // not a canonical scalar
    });
    const err = expectError(() => aggregateSignature(suite, pkg, commits, MESSAGE, shares), ErrorCode.BadSignatureShare, [2, 5]);
    expect(err.message).toMatch(/2, 5/);
  });

  it('aggregate-first: shares off by +d and -d still sum to the valid signature; verifySignatureShares names both', () => {
    const { group } = suite;
    const { commits, shares } = bothRounds(suite, signers, MESSAGE);
    const shift = (i: number, d: bigint) => ({ share: group.scalarToBytes(group.add(group.scalarFromBytes(shares.get(i)!.share, 's', true), d)) });
    const offset = new Map(shares).set(2, shift(2, 5n)).set(4, shift(4, group.neg(5n)));
    const sig = aggregateSignature(suite, pkg, commits, MESSAGE, offset);
    expect(Buffer.from(sig).equals(Buffer.from(aggregateSignature(suite, pkg, commits, MESSAGE, shares)))).toBe(true);
    expect(verifyIndependently(suite, groupPublicKey(suite, pkg), MESSAGE, sig)).toBe(true);
    expectError(() => verifySignatureShares(suite, pkg, commits, MESSAGE, offset), ErrorCode.BadSignatureShare, [2, 4]);
  });

  it('a share computed for another message is bad; honest shares verify', () => {
    const { commits, shares } = bothRounds(suite, signers, MESSAGE);
    verifySignatureShares(suite, pkg, commits, MESSAGE, shares);
    expectError(() => verifySignatureShares(suite, pkg, commits, utf8ToBytes('other'), shares), ErrorCode.BadSignatureShare, [1, 2, 4, 5]);
  });

  it('a malformed nonce commitment names its sender', () => {
    const { nonces, commits } = round1(suite, signers);
    commits.set(2, { hiding: new Uint8Array(32), binding: commits.get(2)!.binding }); // not a valid element
    commits.set(5, { hiding: commits.get(5)!.hiding, binding: new Uint8Array(31) });
    expectError(() => signRound2(suite, signers[0]!, nonces.get(1)!, commits, MESSAGE), ErrorCode.BadPoint, [2, 5]);
    expect(nonces.get(1)!.consumed).toBe(true);
  });

  it('a share from outside the signer set names the sender; a missing share names nobody', () => {
    const { commits, shares } = bothRounds(suite, signers, MESSAGE);
    const extra = new Map(shares).set(3, shares.get(1)!);
    expectError(() => aggregateSignature(suite, pkg, commits, MESSAGE, extra), ErrorCode.UnexpectedParty, [3]);
    const missing = new Map(shares);
    missing.delete(4);
    expectError(() => aggregateSignature(suite, pkg, commits, MESSAGE, missing), ErrorCode.UnexpectedParty, []);
  });
});

describe('one-use nonces, epochs, suites and signer sets', () => {
  const suite = getSigningSuite('secp256k1');
  const keys = dealerKeys('secp256k1', 2, 3);
  const pkg = keys[0]!.publicKey;

  it('reusing nonces throws BadState; nonces are wiped after use', () => {
    const { nonces, commits } = round1(suite, pick(keys, [1, 2]));
    const n1 = nonces.get(1)!;
    signRound2(suite, keys[0]!, n1, commits, MESSAGE);
    expect(n1.consumed).toBe(true);
    expect(n1.hiding.every((b) => b === 0) && n1.binding.every((b) => b === 0)).toBe(true);
    expectError(() => signRound2(suite, keys[0]!, n1, commits, MESSAGE), ErrorCode.BadState);
    expectError(() => signRound2(suite, keys[0]!, n1, commits, utf8ToBytes('another message')), ErrorCode.BadState);
    const n2 = nonces.get(2)!;
    discardNonces(n2);
    expectError(() => signRound2(suite, keys[1]!, n2, commits, MESSAGE), ErrorCode.BadState);
  });

  it('a failed round 2 still consumes the nonces', () => {
    const { nonces, commits } = round1(suite, pick(keys, [1, 2]));
    expectError(() => signRound2(suite, keys[0]!, nonces.get(1)!, commits, 'not bytes' as never), ErrorCode.BadInput);
    expectError(() => signRound2(suite, keys[0]!, nonces.get(1)!, commits, MESSAGE), ErrorCode.BadState);
  });

  it('mixed epochs throw EpochMismatch', () => {
    const k1 = keys[0]!;
    // Share from a later epoch with the old package.
    const later: KeyShare = { publicKey: pkg, secret: { ...k1.secret, epoch: 1 } };
    let r = round1(suite, [later, keys[1]!]);
    expectError(() => signRound2(suite, later, r.nonces.get(1)!, r.commits, MESSAGE), ErrorCode.EpochMismatch);
    // Nonces made for the epoch-0 share, used with a (self-consistent) epoch-1 key.
    const next: KeyShare = { publicKey: { ...pkg, epoch: 1 }, secret: { ...k1.secret, epoch: 1 } };
    r = round1(suite, pick(keys, [1, 2]));
    expectError(() => signRound2(suite, next, r.nonces.get(1)!, r.commits, MESSAGE), ErrorCode.EpochMismatch);
    // Signers holding different epochs never combine.
    const k2next: KeyShare = { publicKey: { ...pkg, epoch: 1 }, secret: { ...keys[1]!.secret, epoch: 1 } };
    expectError(() => runSign([k1, k2next], MESSAGE), ErrorCode.EpochMismatch);
  });

  it('a key of another suite is rejected', () => {
    const edKeys = dealerKeys('ed25519', 2, 3);
    expectError(() => signRound1(suite, edKeys[0]!.secret), ErrorCode.UnknownSuite);
    const { commits } = round1(suite, pick(keys, [1, 2]));
    expectError(() => verifySignatureShares(suite, edKeys[0]!.publicKey, commits, MESSAGE, new Map()), ErrorCode.UnknownSuite);
  });

  it('too few, duplicate and out-of-range signers throw typed errors', () => {
    expectError(() => runSign([keys[0]!], MESSAGE), ErrorCode.BadParameters);
    expectError(() => runSign([keys[0]!, keys[0]!], MESSAGE), ErrorCode.BadParameters);
    const { nonces, commits } = round1(suite, pick(keys, [1, 2]));
    const tooFew = new Map([[1, commits.get(1)!]]);
    expectError(() => signRound2(suite, keys[0]!, nonces.get(1)!, tooFew, MESSAGE), ErrorCode.BadParameters);
    for (const bad of [0, 4, 1.5, -1]) {
      const r = round1(suite, pick(keys, [1, 2]));
      const withBad = new Map(r.commits).set(bad, r.commits.get(2)!);
      expectError(() => signRound2(suite, keys[0]!, r.nonces.get(1)!, withBad, MESSAGE), ErrorCode.UnexpectedParty);
      expectError(() => verifySignatureShares(suite, pkg, withBad, MESSAGE, new Map()), ErrorCode.UnexpectedParty);
    }
    // A share index outside 1..n.
    const outside: KeyShare = { publicKey: pkg, secret: { ...keys[0]!.secret, index: 4 } };
    const r = round1(suite, [outside, keys[1]!]);
    expectError(() => signRound2(suite, outside, r.nonces.get(4)!, r.commits, MESSAGE), ErrorCode.BadInput);
  });

  it("the signer's own commitment must be present and match its nonces", () => {
    let r = round1(suite, keys);
    const without = new Map(r.commits);
    without.delete(1);
    expectError(() => signRound2(suite, keys[0]!, r.nonces.get(1)!, without, MESSAGE), ErrorCode.BadInput);
    r = round1(suite, keys);
    const swapped = new Map(r.commits).set(1, r.commits.get(3)!);
    expectError(() => signRound2(suite, keys[0]!, r.nonces.get(1)!, swapped, MESSAGE), ErrorCode.BadInput);
  });

  it('bad secret shares are rejected before any crypto, without echoing the share', () => {
    const value = new Uint8Array(32).fill(0xff); // >= order
    const err = expectError(() => signRound1(suite, { ...keys[0]!.secret, value }), ErrorCode.BadScalar);
    expect(err.message).not.toMatch(/ff{8}/i);
    expectError(() => signRound1(suite, { ...keys[0]!.secret, value: new Uint8Array(31) }), ErrorCode.BadScalar);
    // A canonical share that is not the one the package vouches for.
    const wrong: KeyShare = { publicKey: pkg, secret: { ...keys[0]!.secret, value: keys[1]!.secret.value } };
    const r = round1(suite, [wrong, keys[1]!]);
    expectError(() => signRound2(suite, wrong, r.nonces.get(1)!, r.commits, MESSAGE), ErrorCode.BadShare);
  });

  it('a bad rng is a typed error', () => {
    expectError(() => signRound1(suite, keys[0]!.secret, () => new Uint8Array(5)), ErrorCode.BadInput);
  });
});

describe('signing with DKG-made and refreshed keys', () => {
  for (const id of SIGNING_SUITES) {
    it(`${id}: 2-of-3 DKG keys sign; after a refresh the same group key signs; epochs never mix`, () => {
      const suite = getSigningSuite(id);
      const message = id === 'bip340' ? MESSAGE32 : MESSAGE;
      const keys = runDkg(id, 2, 3);
      const pk = groupPublicKey(suite, keys[0]!.publicKey);
      expect(verifyIndependently(suite, pk, message, runSign(pick(keys, [1, 3]), message))).toBe(true);

      const fresh = runRefresh(keys);
      expect(fresh[0]!.publicKey.epoch).toBe(keys[0]!.publicKey.epoch + 1);
      expect(Buffer.from(groupPublicKey(suite, fresh[0]!.publicKey)).equals(Buffer.from(pk))).toBe(true);
      expect(verifyIndependently(suite, pk, message, runSign(pick(fresh, [2, 3]), message))).toBe(true);

      // An old-epoch share next to a new-epoch one.
      expectError(() => runSign([keys[0]!, fresh[1]!], message), ErrorCode.EpochMismatch);
      const stale: KeyShare = { publicKey: fresh[0]!.publicKey, secret: keys[0]!.secret };
      const r = round1(suite, [stale, fresh[1]!]);
      expectError(() => signRound2(suite, stale, r.nonces.get(1)!, r.commits, message), ErrorCode.EpochMismatch);
      // Relabelling the old share with the new epoch does not help: it no longer matches its verifying share.
      const relabelled: KeyShare = { publicKey: fresh[0]!.publicKey, secret: { ...keys[0]!.secret, epoch: fresh[0]!.secret.epoch } };
      const r2 = round1(suite, [relabelled, fresh[1]!]);
      expectError(() => signRound2(suite, relabelled, r2.nonces.get(1)!, r2.commits, message), ErrorCode.BadShare);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The signing session: signed, echo-checked round-1 commitments (identifiable abort)

describe('signing session: signed commitments, echo folded into round 2', () => {
  const SHAPES = [
    { t: 2, n: 3, signers: [1, 2], deviant: 2 },
    { t: 3, n: 5, signers: [1, 3, 5], deviant: 3 },
  ] as const;

  function failed(o: SignOutcome | undefined): { step: string; error: TesseraError } {
    expect(o).toBeDefined();
    if (!o || o.ok) throw new Error('expected this signer to fail');
    return o;
  }

  /** A second commitment signed by `signer` for the same run: what an equivocator shows one victim. */
  function secondCommit(key: KeyShare, signers: readonly number[], ids: { sessionId: Uint8Array; runId: Uint8Array }, auth: ReturnType<typeof testAuthenticators>[number]): SignedCommitMsg {
    const r = signSessionRound1({ suite: getSigningSuite(key.publicKey.suite), key, signers, ...ids, auth });
    signSessionDiscard(r.state);
    return r.commit;
  }

  for (const suiteId of ['ed25519', 'secp256k1'] as const) {
    for (const { t, n, signers } of SHAPES) {
      it(`${suiteId} ${t}-of-${n}: every signer aggregates the same valid signature`, () => {
        const suite = getSigningSuite(suiteId);
        const keys = dealerKeys(suiteId, t, n);
        const out = simulateSignSession(signers.map((i) => keys[i - 1]!), MESSAGE32, { auths: testAuthenticators(n) });
        const sigs = signers.map((i) => {
          const o = out.get(i)!;
          if (!o.ok) throw o.error;
          return Buffer.from(o.signature).toString('hex');
        });
        expect(new Set(sigs).size).toBe(1);
        const sig = (out.get(signers[0]) as { signature: Uint8Array }).signature;
        expect(verifyIndependently(suite, groupPublicKey(suite, keys[0]!.publicKey), MESSAGE32, sig)).toBe(true);
      });
    }
  }

  for (const { t, n, signers, deviant } of SHAPES) {
    it(`${t}-of-${n}: an equivocating signer is named by every honest signer, with evidence that verifies; nobody else is named`, async () => {
      await loadIdentityEngine();
      const keys = dealerKeys('ed25519', t, n);
      const { auths, publicKeys } = identityAuthenticators(n);
      const ids = { sessionId: randomBytes(16), runId: randomBytes(32) };
      const victim = signers[0];
      const other = secondCommit(keys[deviant - 1]!, signers, ids, auths[deviant - 1]!);
      const out = simulateSignSession(signers.map((i) => keys[i - 1]!), MESSAGE, {
        ...ids,
        auths,
        tamper: { commit: (from, to, m) => (from === deviant && to === victim ? other : m) },
      });
      for (const i of signers.filter((j) => j !== deviant)) {
        const f = failed(out.get(i));
        expect(f.step).toBe('finish');
        // Equivocation, not BadSignatureShare: the victim's share is never judged against a list it did not use.
        expect(f.error.code).toBe(ErrorCode.Equivocation);
        expect([...f.error.culprits]).toEqual([deviant]);
        expect(f.error.evidence).toHaveLength(1);
        const ev = f.error.evidence[0]!;
        expect(ev).toMatchObject({ protocol: 'sign', signer: deviant });
        expect(verifyEquivocationEvidence(ev, publicKeys[deviant - 1]!)).toBe(true);
        // Forgeries: another signer's key, one commitment twice, changed content, another run or signer.
        if (ev.protocol !== 'sign') throw new Error('expected signing evidence');
        const forged: EquivocationEvidence[] = [
          { ...ev, second: ev.first },
          { ...ev, second: { ...ev.second, hiding: ev.first.hiding, binding: ev.first.binding } },
          { ...ev, second: { ...ev.second, binding: ev.first.hiding } },
          { ...ev, binding: { ...ev.binding, runId: randomBytes(32) } },
          { ...ev, binding: { ...ev.binding, sessionId: randomBytes(16) } },
          { ...ev, signer: victim },
          { ...ev, protocol: 'dkg' } as unknown as EquivocationEvidence,
        ];
        for (const f2 of forged) expect(verifyEquivocationEvidence(f2, publicKeys[deviant - 1]!)).toBe(false);
        for (const j of signers.filter((x) => x !== deviant)) expect(verifyEquivocationEvidence(ev, publicKeys[j - 1]!)).toBe(false);
      }
      // Whatever the deviant itself reports, no honest signer is ever named by anyone.
      for (const o of out.values()) if (!o.ok) expect(o.error.culprits.filter((c) => c !== deviant)).toEqual([]);
    });
  }

  /** Re-sign a changed round-2 message as `from` would: only the intended deviation remains. */
  function resignShare(
    auth: ReturnType<typeof testAuthenticators>[number],
    binding: SignBinding,
    from: number,
    m: SignedShareMsg,
  ): SignedShareMsg {
    const list = new Map(Object.entries(m.commitments).map(([k, c]) => [Number(k), c] as const));
    return { ...m, signature: auth.sign(signShareSignedBytes(binding, from, MESSAGE, list, m.share)) };
  }

  for (const { t, n, signers, deviant } of SHAPES) {
    it(`${t}-of-${n}: under every scripted single-signer deviation an honest signer is never named`, () => {
      const suite = getSigningSuite('ed25519');
      const keys = dealerKeys('ed25519', t, n);
      const auths = testAuthenticators(n);
      const honest = signers.filter((i) => i !== deviant);
      const target = honest[0]!; // the honest signer the deviant tries to frame
      const sessionId = randomBytes(16);
      const runId = randomBytes(32);
      const binding: SignBinding = { suite: 'ed25519', sessionId, runId };
      const dAuth = auths[deviant - 1]!;
      // Honest target's commitment from an earlier run of the same session id.
      const stale = secondCommit(keys[target - 1]!, signers, { sessionId, runId: randomBytes(32) }, auths[target - 1]!);
      const plusOne = (share: Uint8Array) => suite.group.scalarToBytes(suite.group.add(suite.group.scalarFromBytes(share, 's', true), 1n));
      const withEcho = (m: SignedShareMsg, j: number, c: SignedCommitMsg) => ({ ...m, commitments: { ...m.commitments, [j]: c } });
      const flip = (b: Uint8Array) => {
        const c = Uint8Array.from(b);
        c[3]! ^= 1;
        return c;
      };

      type Case = { what: string; tamper: Parameters<typeof simulateSignSession>[2]['tamper']; code: ErrorCode | ((signer: number) => ErrorCode); culprits: number[] };
      const cases: Case[] = [
        { what: 'bad share, signed by the deviant', code: ErrorCode.BadSignatureShare, culprits: [deviant], tamper: { share: (f, _to, m) => (f === deviant ? resignShare(dAuth, binding, f, { ...m, share: plusOne(m.share) }) : m) } },
        { what: 'share changed after signing', code: ErrorCode.BadProof, culprits: [], tamper: { share: (f, _to, m) => (f === deviant ? { ...m, share: plusOne(m.share) } : m) } },
        { what: 'echo of a commitment the target never signed', code: ErrorCode.BadProof, culprits: [], tamper: { share: (f, _to, m) => (f === deviant ? resignShare(dAuth, binding, f, withEcho(m, target, { ...m.commitments[target]!, hiding: m.commitments[deviant]!.hiding })) : m) } },
        { what: "echo of the target's commitment from an earlier run", code: ErrorCode.BadProof, culprits: [], tamper: { share: (f, _to, m) => (f === deviant ? resignShare(dAuth, binding, f, withEcho(m, target, stale)) : m) } },
        {
          // Every receiver rejects it in round 2; the target itself then misses their shares.
          what: "the target's commitment from an earlier run, replayed in round 1",
          code: (i) => (i === target ? ErrorCode.UnexpectedParty : ErrorCode.BadProof),
          culprits: [],
          tamper: { commit: (f, _to, m) => (f === target ? stale : m) },
        },
        { what: 'commitment with a broken signature', code: ErrorCode.BadProof, culprits: [], tamper: { commit: (f, _to, m) => (f === deviant ? { ...m, signature: flip(m.signature) } : m) } },
        { what: 'malformed commitment', code: ErrorCode.BadMessage, culprits: [], tamper: { commit: (f, _to, m) => (f === deviant ? { ...m, hiding: m.hiding.subarray(1) } : m) } },
        { what: 'dropped commitment', code: ErrorCode.UnexpectedParty, culprits: [], tamper: { commit: (f, _to, m) => (f === deviant ? undefined : m) } },
        { what: 'dropped share', code: ErrorCode.UnexpectedParty, culprits: [], tamper: { share: (f, _to, m) => (f === deviant ? undefined : m) } },
        {
          what: 'echo of another signer set',
          code: ErrorCode.BadMessage,
          culprits: [],
          tamper: {
            share: (f, _to, m) => {
              if (f !== deviant) return m;
              const commitments = { ...m.commitments };
              delete commitments[target];
              return resignShare(dAuth, binding, f, { ...m, commitments });
            },
          },
        },
        { what: 'round-2 signature broken', code: ErrorCode.BadProof, culprits: [], tamper: { share: (f, _to, m) => (f === deviant ? { ...m, signature: flip(m.signature) } : m) } },
      ];
      for (const c of cases) {
        const out = simulateSignSession(signers.map((i) => keys[i - 1]!), MESSAGE, { sessionId, runId, auths, tamper: c.tamper });
        for (const i of honest) {
          const f = failed(out.get(i));
          expect(f.error.code, `${c.what} (signer ${i})`).toBe(typeof c.code === 'function' ? c.code(i) : c.code);
          expect([...f.error.culprits], `${c.what} (signer ${i})`).toEqual(c.culprits);
        }
        for (const o of out.values()) if (!o.ok) expect(o.error.culprits.filter((x) => !c.culprits.includes(x)), c.what).toEqual([]);
      }
    });
  }

  it('validates its inputs: signer set, run id, authenticator, one-use states', () => {
    const keys = dealerKeys('ed25519', 2, 3);
    const [auth] = testAuthenticators(3);
    const suite = getSigningSuite('ed25519');
    const base = { suite, key: keys[0]!, signers: [1, 2], sessionId: randomBytes(16), runId: randomBytes(32), auth: auth! };
    expectError(() => signSessionRound1({ ...base, signers: [2, 3] }), ErrorCode.BadParameters);
    expectError(() => signSessionRound1({ ...base, signers: [1] }), ErrorCode.BadParameters);
    expectError(() => signSessionRound1({ ...base, signers: [1, 1] }), ErrorCode.BadParameters);
    expectError(() => signSessionRound1({ ...base, runId: new Uint8Array(31) }), ErrorCode.BadInput);
    expectError(() => signSessionRound1({ ...base, sessionId: new Uint8Array(8) }), ErrorCode.BadInput);
    expectError(() => signSessionRound1({ ...base, auth: {} as never }), ErrorCode.BadInput);
    const r = signSessionRound1(base);
    expect(JSON.stringify(r.state)).toBe('{"round":1,"consumed":false}');
    signSessionDiscard(r.state);
    expect(r.state.consumed).toBe(true);
    // The signed bytes bind the run: another run id gives other bytes.
    const b1 = signCommitSignedBytes({ suite: 'ed25519', sessionId: base.sessionId, runId: base.runId }, 1, r.commit);
    const b2 = signCommitSignedBytes({ suite: 'ed25519', sessionId: base.sessionId, runId: randomBytes(32) }, 1, r.commit);
    expect(Buffer.from(b1).equals(Buffer.from(b2))).toBe(false);
  });
});

