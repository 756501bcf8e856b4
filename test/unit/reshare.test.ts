/**
 * Resharing (core/reshare.ts, issue 13), in process: the pure API and the session rounds.
 *
 * For every suite a key made by the in-process DKG goes 2-of-3 [1,2,3] -> 3-of-5 [3,4,5,6,7]
 * (overlapping) -> 2-of-4 [1,2,3,4] -> 2-of-3 [5,6,7] (disjoint), each step by a different t-subset of
 * dealers. At every step the group key is the original one and the epoch goes up by one; FROST suites
 * sign with the new shares (verified under the ORIGINAL group key), HPKE and ECDSA suites check that t'
 * new shares interpolate to the same secret as t old ones. Then: old and new shares never combine;
 * malicious dealers are named (and only they), malformed or unsigned messages name nobody; bad inputs
 * are clear BAD_PARAMETERS errors; and the round states are wiped on every exit path.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '@noble/hashes/utils.js';
import type { PartyAuthenticator } from '../../core/auth.js';
import { publicPackageDigest } from '../../core/commit.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { verifyEquivocationEvidence, type ReshareBadShare, type ReshareEquivocation } from '../../core/evidence.js';
import { loadIdentityEngine } from '../../core/identity.js';
import type { ReshareConfirmMsg, ReshareDealMsg, ReshareEchoMsg, ReshareShareMsg } from '../../core/messages.js';
import {
  checkDealerCommitments,
  combineSubShares,
  dealReshare,
  reshareDealSignedBytes,
  reshareShareSignedBytes,
  reshareDiscard,
  reshareFinish,
  reshareRound1,
  reshareRound2,
  reshareRound3,
  resharedPackage,
  reshareWipeProbe,
  type ReshareBinding,
  type ReshareParams,
  type ReshareState,
  type ReshareTarget,
} from '../../core/reshare.js';
import { combine } from '../../core/shamir.js';
import { groupPublicKey } from '../../core/sign.js';
import { getSuite, SUITE_IDS, type SuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage, SecretShare } from '../../core/types.js';
import { decodeMessage, encodeMessage } from '../../core/wire.js';
import { identityAuthenticators, runDkg, testAuthenticators } from '../helpers/run-dkg.js';
import { runSign } from '../helpers/run-sign.js';
import { thrown } from '../helpers/thrown.js';
import { wipeShareMessages } from '../../core/wipe.js';

const MAX_NODE = 8;

const scalarOf = (suite: SuiteId, s: SecretShare) => getSuite(suite).group.scalarFromBytes(s.value, 'share', true);

/** The secret t or more shares interpolate to (RFC 9591 Appendix C.1 secret_share_combine). */
function secretOf(keys: readonly KeyShare[]): bigint {
  const suite = keys[0]!.publicKey.suite;
  return combine(
    getSuite(suite).group,
    keys.map((k) => ({ index: k.secret.index, value: scalarOf(suite, k.secret) })),
  );
}

const pick = (keys: readonly KeyShare[], indices: readonly number[]) => indices.map((i) => keys.find((k) => k.secret.index === i)!);

// ---------------------------------------------------------------------------------------------
// The pure API, as export-time resharing uses it

function pureReshare(keys: readonly KeyShare[], dealers: readonly number[], target: ReshareTarget): KeyShare[] {
  const old = keys[0]!.publicKey;
  const dealt = new Map<number, Uint8Array[]>();
  const subs = new Map<number, Map<number, Uint8Array>>();
  for (const k of pick(keys, dealers)) {
    const d = dealReshare(old, k.secret, target);
    dealt.set(k.secret.index, d.commitments);
    for (const [j, v] of d.subShares) {
      if (!subs.has(j)) subs.set(j, new Map());
      subs.get(j)!.set(k.secret.index, v);
    }
  }
  const pkg = resharedPackage(old, dealt, target);
  return target.indices.map((j) => ({ publicKey: pkg, secret: combineSubShares(old, dealt, subs.get(j)!, j, pkg) }));
}

// ---------------------------------------------------------------------------------------------
// The session, in memory

interface ReshareTamper {
  deal?: (from: number, to: number, msg: ReshareDealMsg) => ReshareDealMsg;
  share?: (from: number, to: number, msg: ReshareShareMsg) => ReshareShareMsg;
  echo?: (from: number, to: number, msg: ReshareEchoMsg) => ReshareEchoMsg;
  confirm?: (from: number, to: number, msg: ReshareConfirmMsg) => ReshareConfirmMsg;
}

type Step = 'round1' | 'round2' | 'round3' | 'finish';
type Outcome = { ok: true; package: PublicKeyPackage; share?: SecretShare } | { ok: false; step: Step; error: TesseraError };

interface SessionOptions {
  auths: PartyAuthenticator[];
  sessionId?: Uint8Array;
  runId?: Uint8Array;
  tamper?: ReshareTamper;
  /** A player's old package, when it should differ from the holders' (a stale node). */
  oldPackageOf?: (i: number) => PublicKeyPackage;
}

/**
 * Run a reshare session among dealers ∪ committee. `holders` are the old keys (at least the dealers').
 * A player that throws stops; the others then miss its messages, as on a network.
 */
function simulateReshare(holders: readonly KeyShare[], dealers: readonly number[], target: ReshareTarget, opts: SessionOptions): Map<number, Outcome> {
  const old = holders[0]!.publicKey;
  const sessionId = opts.sessionId ?? randomBytes(16);
  const runId = opts.runId ?? randomBytes(32);
  const tamper = opts.tamper ?? {};
  const players = [...new Set([...dealers, ...target.indices])].sort((a, b) => a - b);
  const out = new Map<number, Outcome>();
  const step = <T>(i: number, name: Step, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      out.set(i, { ok: false, step: name, error: e });
      return undefined;
    }
  };
  const inbox = <M>(to: number, sent: Map<number, M>, hook?: (from: number, to: number, m: M) => M) => {
    const m = new Map<number, M>();
    for (const [from, msg] of sent) if (from !== to) m.set(from, hook ? hook(from, to, msg) : msg);
    return m;
  };
  const s1 = new Map<number, ReshareState<1>>();
  const deals = new Map<number, ReshareDealMsg>();
  const dealtShares = new Map<number, Map<number, ReshareShareMsg>>();
  for (const i of players) {
    const params: ReshareParams = {
      suite: old.suite,
      sessionId,
      runId,
      self: i,
      oldPackage: opts.oldPackageOf?.(i) ?? old,
      dealers,
      target,
      ...(dealers.includes(i) ? { share: pick(holders, [i])[0]!.secret } : {}),
    };
    const r = step(i, 'round1', () => reshareRound1(params, opts.auths[i - 1]!));
    if (!r) continue;
    s1.set(i, r.state);
    if (r.deal) deals.set(i, r.deal);
    if (r.shares) dealtShares.set(i, r.shares);
  }
  const s2 = new Map<number, ReshareState<2>>();
  const echoes = new Map<number, ReshareEchoMsg>();
  for (const [i, st] of s1) {
    const r = step(i, 'round2', () => reshareRound2(st, inbox(i, deals, tamper.deal)));
    if (!r) continue;
    s2.set(i, r.state);
    echoes.set(i, r.echo);
  }
  const s3 = new Map<number, ReshareState<3>>();
  const confirms = new Map<number, ReshareConfirmMsg>();
  for (const [i, st] of s2) {
    const toMe = new Map<number, ReshareShareMsg>();
    for (const [from, sent] of dealtShares) {
      const m = sent.get(i);
      const copy = m && { share: Uint8Array.from(m.share), signature: Uint8Array.from(m.signature) };
      if (copy) toMe.set(from, tamper.share ? tamper.share(from, i, copy) : copy);
    }
    const r = step(i, 'round3', () => reshareRound3(st, inbox(i, echoes, tamper.echo), toMe));
    wipeShareMessages(toMe);
    if (!r) continue;
    s3.set(i, r.state);
    confirms.set(i, r.confirm);
  }
  for (const sent of dealtShares.values()) wipeShareMessages(sent);
  for (const [i, st] of s3) {
    const r = step(i, 'finish', () => reshareFinish(st, inbox(i, confirms, tamper.confirm)));
    if (r) out.set(i, { ok: true, ...r });
  }
  return out;
}

/** The new keys of a session that must have succeeded everywhere. */
function newKeys(outcomes: Map<number, Outcome>, target: ReshareTarget): KeyShare[] {
  for (const [i, o] of outcomes) if (!o.ok) throw new Error(`party ${i} failed in ${o.step}: ${o.error.code} ${o.error.message}`);
  return target.indices.map((j) => {
    const o = outcomes.get(j) as { ok: true; package: PublicKeyPackage; share?: SecretShare };
    expect(o.share).toBeDefined();
    return { publicKey: o.package, secret: o.share! };
  });
}

function bindingFor(old: PublicKeyPackage, sessionId: Uint8Array, runId: Uint8Array, dealers: readonly number[], target: ReshareTarget): ReshareBinding {
  return {
    suite: old.suite,
    sessionId,
    runId,
    oldPackageDigest: publicPackageDigest(old),
    oldIndices: old.indices ?? Array.from({ length: old.parties }, (_, k) => k + 1),
    threshold: target.threshold,
    indices: target.indices,
    dealers,
  };
}

/** What a malicious dealer does: sign any deal it likes for this run. */
function signedDeal(auth: PartyAuthenticator, binding: ReshareBinding, sender: number, commitments: Uint8Array[]): ReshareDealMsg {
  const msg = { commitments, oldPackageDigest: Uint8Array.from(binding.oldPackageDigest), signature: new Uint8Array(0) };
  return { ...msg, signature: auth.sign(reshareDealSignedBytes(binding, sender, msg)) };
}

const STEPS: { dealers: number[]; target: ReshareTarget }[] = [
  { dealers: [1, 3], target: { threshold: 3, indices: [3, 4, 5, 6, 7] } }, // overlapping
  { dealers: [4, 5, 7], target: { threshold: 2, indices: [1, 2, 3, 4] } },
  { dealers: [2, 3], target: { threshold: 2, indices: [5, 6, 7] } }, // disjoint
];

// ---------------------------------------------------------------------------------------------

describe.each(SUITE_IDS)('reshare (%s): 2-of-3 -> 3-of-5 -> 2-of-4 -> 2-of-3, same key', (suiteId) => {
  const suite = getSuite(suiteId);
  const check = (original: readonly KeyShare[], keys: readonly KeyShare[], epoch: number, target: ReshareTarget) => {
    const pkg = keys[0]!.publicKey;
    expect(pkg.threshold).toBe(target.threshold);
    expect(pkg.parties).toBe(target.indices.length);
    expect(pkg.epoch).toBe(epoch);
    // A committee of exactly 1..n' is written without indices (core/types.ts).
    if (target.indices.every((i, k) => i === k + 1)) expect(pkg.indices).toBeUndefined();
    else expect(pkg.indices).toEqual(target.indices);
    expect(pkg.commitments[0]).toEqual(original[0]!.publicKey.commitments[0]);
    const secret = secretOf(pick(original, [1, 2]));
    // Any t' of the new shares give the key: the first t', and the last t'.
    expect(secretOf(keys.slice(0, target.threshold))).toBe(secret);
    expect(secretOf(keys.slice(-target.threshold))).toBe(secret);
    if (suite.kind === 'sign') {
      const message = randomBytes(32);
      const signature = runSign(keys.slice(-target.threshold), message);
      const originalKey = groupPublicKey(suite, original[0]!.publicKey);
      expect(suite.verify(signature, message, originalKey)).toBe(true);
    }
  };

  it('in a session (signed deals, echo, confirmation), every t-subset style of dealers', () => {
    const original = runDkg(suiteId, 2, 3);
    const auths = testAuthenticators(MAX_NODE);
    let keys: KeyShare[] = original;
    STEPS.forEach(({ dealers, target }, k) => {
      const outcomes = simulateReshare(keys, dealers, target, { auths });
      // A dealer leaving the committee gets the package and no share.
      for (const d of dealers.filter((d) => !target.indices.includes(d))) {
        const o = outcomes.get(d)!;
        expect(o.ok && o.share === undefined).toBe(true);
      }
      keys = newKeys(outcomes, target);
      check(original, keys, k + 1, target);
    });
  });

  it('with the pure API (export-time resharing)', () => {
    const original = runDkg(suiteId, 2, 3);
    let keys: KeyShare[] = original;
    STEPS.forEach(({ dealers, target }, k) => {
      keys = pureReshare(keys, dealers, target);
      check(original, keys, k + 1, target);
    });
  });

  it('old and new shares never combine', () => {
    const old = runDkg(suiteId, 2, 3);
    const secret = secretOf(pick(old, [1, 2]));
    const fresh = pureReshare(old, [2, 3], { threshold: 3, indices: [3, 4, 5, 6, 7] });
    expect(secretOf(pick(fresh, [4, 5, 6]))).toBe(secret);
    // t' shares, some old: not the key (a different polynomial), whichever mix.
    expect(secretOf([...pick(old, [1]), ...pick(fresh, [4, 5])])).not.toBe(secret);
    expect(secretOf([...pick(old, [1, 2]), ...pick(fresh, [4])])).not.toBe(secret);
    // t old-threshold shares mixing both: not the key either.
    expect(secretOf([...pick(old, [1]), ...pick(fresh, [3])])).not.toBe(secret);
    if (suite.kind === 'sign') {
      // The epochs differ, so the signers refuse to sign together.
      expect(thrown(() => runSign([...pick(old, [1]), ...pick(fresh, [4, 5])], randomBytes(32))).code).toBe(ErrorCode.EpochMismatch);
    }
  });
});

describe('reshare: any dealer set of at least t old holders', () => {
  it.each([[[1, 2]], [[1, 3]], [[2, 3]], [[1, 2, 3]]])('dealers %j give the same key to [2,4,6] (2-of-3)', (dealers) => {
    const keys = runDkg('secp256k1', 2, 3);
    const target: ReshareTarget = { threshold: 2, indices: [2, 4, 6] };
    const fresh = newKeys(simulateReshare(keys, dealers, target, { auths: testAuthenticators(MAX_NODE) }), target);
    expect(secretOf(pick(fresh, [4, 6]))).toBe(secretOf(pick(keys, [1, 3])));
    expect(fresh[0]!.publicKey.commitments[0]).toEqual(keys[0]!.publicKey.commitments[0]);
  });
});

describe('reshare session: malicious dealers are named, and only they', () => {
  const suiteId: SuiteId = 'ed25519';
  const dealers = [1, 2];
  const target: ReshareTarget = { threshold: 3, indices: [2, 3, 4, 5] };

  it('a dealer whose C_0 is not its old verifying share is named by every other player', () => {
    const keys = runDkg(suiteId, 2, 3);
    const auths = testAuthenticators(MAX_NODE);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const binding = bindingFor(keys[0]!.publicKey, sessionId, runId, dealers, target);
    const { group } = getSuite(suiteId);
    const outcomes = simulateReshare(keys, dealers, target, {
      auths,
      sessionId,
      runId,
      tamper: {
        deal: (from, _to, m) => {
          if (from !== 1) return m;
          // Dealer 1 deals a polynomial whose constant term is not its share, and signs it.
          const commitments = [group.pointToBytes(group.mulBase(group.randomScalar())), ...m.commitments.slice(1)];
          return signedDeal(auths[0]!, binding, 1, commitments);
        },
      },
    });
    for (const i of [2, 3, 4, 5]) {
      const o = outcomes.get(i)!;
      expect(o.ok).toBe(false);
      if (o.ok) continue;
      expect(o.step).toBe('round2');
      expect(o.error.code).toBe(ErrorCode.BadShare);
      expect(o.error.culprits).toEqual([1]);
    }
  });

  it('the pure check names the dealer too (checkDealerCommitments, resharedPackage)', () => {
    const keys = runDkg(suiteId, 2, 3);
    const old = keys[0]!.publicKey;
    const d1 = dealReshare(old, keys[0]!.secret, target);
    const d2 = dealReshare(old, keys[1]!.secret, target);
    expect(() => checkDealerCommitments(old, 1, d1.commitments, target)).not.toThrow();
    // Dealer 2's commitments passed off as dealer 1's: C_0 is not Y_1.
    const e = thrown(() => checkDealerCommitments(old, 1, d2.commitments, target));
    expect(e.code).toBe(ErrorCode.BadShare);
    expect(e.culprits).toEqual([1]);
    const bad = thrown(() => resharedPackage(old, new Map([[1, d1.commitments], [2, [...d2.commitments.slice(0, 2)]]]), target));
    expect(bad.code).toBe(ErrorCode.BadMessage);
    expect(bad.culprits).toEqual([2]);
    const notPoint = thrown(() => resharedPackage(old, new Map([[1, d1.commitments], [2, [d2.commitments[0]!, new Uint8Array(32).fill(0xff), d2.commitments[2]!]]]), target));
    expect(notPoint.code).toBe(ErrorCode.BadPoint);
    expect(notPoint.culprits).toEqual([2]);
  });

  it('a dealer sending one new party a bad sub-share it signed is named by that party, with evidence a third party can check; nobody else is named', async () => {
    await loadIdentityEngine();
    const keys = runDkg(suiteId, 2, 3);
    const { group } = getSuite(suiteId);
    const { auths, publicKeys } = identityAuthenticators(MAX_NODE);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const binding = bindingFor(keys[0]!.publicKey, sessionId, runId, dealers, target);
    const bad = group.scalarToBytes(group.randomScalar());
    const outcomes = simulateReshare(keys, dealers, target, {
      auths,
      sessionId,
      runId,
      tamper: { share: (from, to, m) => (from === 2 && to === 4 ? { share: bad, signature: auths[1]!.sign(reshareShareSignedBytes(binding, 2, 4, bad)) } : m) },
    });
    const victim = outcomes.get(4)!;
    expect(victim.ok).toBe(false);
    if (!victim.ok) {
      expect(victim.step).toBe('round3');
      expect(victim.error.code).toBe(ErrorCode.BadShare);
      expect(victim.error.culprits).toEqual([2]);
      const [ev] = victim.error.evidence as ReshareBadShare[];
      expect(ev).toMatchObject({ protocol: 'reshare-share', signer: 2, recipient: 4 });
      expect(verifyEquivocationEvidence(ev!, publicKeys[1]!)).toBe(true);
      // Not against anyone else; not with another recipient; not once the share is a good one.
      expect(verifyEquivocationEvidence(ev!, publicKeys[0]!)).toBe(false);
      expect(verifyEquivocationEvidence({ ...ev!, recipient: 5 }, publicKeys[1]!)).toBe(false);
      const good = dealReshare(keys[1]!.publicKey, keys[1]!.secret, target);
      const goodDeal = signedDeal(auths[1]!, binding, 2, good.commitments);
      const goodShare = good.subShares.get(4)!;
      expect(verifyEquivocationEvidence({ ...ev!, deal: goodDeal, share: goodShare, signature: auths[1]!.sign(reshareShareSignedBytes(binding, 2, 4, goodShare)) }, publicKeys[1]!)).toBe(false);
    }
    // The others miss party 4's confirmation: they fail, naming nobody, and release no share.
    for (const i of [1, 2, 3, 5]) {
      const o = outcomes.get(i)!;
      expect(o.ok).toBe(false);
      if (!o.ok) expect(o.error.culprits).toEqual([]);
    }
  });

  it('the pure combine names a dealer whose sub-share does not match its commitments', () => {
    const keys = runDkg(suiteId, 2, 3);
    const old = keys[0]!.publicKey;
    const d1 = dealReshare(old, keys[0]!.secret, target);
    const d2 = dealReshare(old, keys[1]!.secret, target);
    const dealt = new Map([
      [1, d1.commitments],
      [2, d2.commitments],
    ]);
    const pkg = resharedPackage(old, dealt, target);
    const e = thrown(() => combineSubShares(old, dealt, new Map([[1, d1.subShares.get(3)!], [2, d2.subShares.get(4)!]]), 3, pkg));
    expect(e.code).toBe(ErrorCode.BadShare);
    expect(e.culprits).toEqual([2]);
    const missing = thrown(() => combineSubShares(old, dealt, new Map([[1, d1.subShares.get(3)!]]), 3, pkg));
    expect(missing.code).toBe(ErrorCode.UnexpectedParty);
    expect(missing.culprits).toEqual([]);
    // A package that is not the reshare of these commitments is refused before anything is combined.
    const other = resharedPackage(old, new Map([[1, d1.commitments], [2, dealReshare(old, keys[1]!.secret, target).commitments]]), target);
    expect(thrown(() => combineSubShares(old, dealt, new Map([[1, d1.subShares.get(3)!], [2, d2.subShares.get(3)!]]), 3, other)).code).toBe(ErrorCode.VerificationFailed);
    expect(thrown(() => combineSubShares(old, dealt, new Map([[1, d1.subShares.get(3)!], [2, d2.subShares.get(3)!]]), 1, pkg)).code).toBe(ErrorCode.BadParameters);
  });

  it('an equivocating dealer (two signed deals) is named by every player, with evidence a third party can check', async () => {
    await loadIdentityEngine();
    const keys = runDkg(suiteId, 2, 3);
    const { auths, publicKeys } = identityAuthenticators(MAX_NODE);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const binding = bindingFor(keys[0]!.publicKey, sessionId, runId, dealers, target);
    // Dealer 1 shows party 4 another deal of its own share (C_0 still its verifying share).
    const second = dealReshare(keys[0]!.publicKey, keys[0]!.secret, target);
    const forFour = signedDeal(auths[0]!, binding, 1, second.commitments);
    const outcomes = simulateReshare(keys, dealers, target, {
      auths,
      sessionId,
      runId,
      tamper: {
        deal: (from, to, m) => (from === 1 && to === 4 ? forFour : m),
        share: (from, to, m) => {
          if (from !== 1 || to !== 4) return m;
          const share = Uint8Array.from(second.subShares.get(4)!);
          return { share, signature: auths[0]!.sign(reshareShareSignedBytes(binding, 1, 4, share)) };
        },
      },
    });
    for (const i of [2, 3, 4, 5]) {
      const o = outcomes.get(i)!;
      expect(o.ok).toBe(false);
      if (o.ok) continue;
      expect(o.step).toBe('round3');
      expect(o.error.code).toBe(ErrorCode.Equivocation);
      expect(o.error.culprits).toEqual([1]);
      const [ev] = o.error.evidence as ReshareEquivocation[];
      expect(ev!.protocol).toBe('reshare');
      expect(ev!.signer).toBe(1);
      expect(verifyEquivocationEvidence(ev!, publicKeys[0]!)).toBe(true);
      // It proves nothing against anyone else.
      expect(verifyEquivocationEvidence(ev!, publicKeys[1]!)).toBe(false);
    }
  });

  it('malformed, unsigned, replayed or forged messages name nobody', () => {
    const keys = runDkg(suiteId, 2, 3);
    const auths = testAuthenticators(MAX_NODE);
    const run = (tamper: ReshareTamper) => simulateReshare(keys, dealers, target, { auths, tamper });
    const expectUnattributed = (outcomes: Map<number, Outcome>, party: number, code: string, step: Step) => {
      const o = outcomes.get(party)!;
      expect(o.ok).toBe(false);
      if (o.ok) return;
      expect(o.step).toBe(step);
      expect(o.error.code).toBe(code);
      expect(o.error.culprits).toEqual([]);
      for (const other of outcomes.values()) if (!other.ok) expect(other.error.culprits).toEqual([]);
    };
    // A bad signature.
    expectUnattributed(
      run({ deal: (from, to, m) => (from === 1 && to === 3 ? { ...m, signature: Uint8Array.from(m.signature, (b, k) => (k === 0 ? b ^ 1 : b)) } : m) }),
      3,
      ErrorCode.BadProof,
      'round2',
    );
    // Too few commitments.
    expectUnattributed(run({ deal: (from, to, m) => (from === 2 && to === 5 ? { ...m, commitments: m.commitments.slice(1) } : m) }), 5, ErrorCode.BadMessage, 'round2');
    // Not an object at all.
    expectUnattributed(run({ deal: (from, to, m) => (from === 2 && to === 5 ? (null as unknown as ReshareDealMsg) : m) }), 5, ErrorCode.BadMessage, 'round2');
    // A deal signed in another run (replayed): its signature does not verify for this run.
    const other = randomBytes(32);
    expectUnattributed(
      run({
        deal: (from, to, m) => {
          if (from !== 1 || to !== 4) return m;
          const b = bindingFor(keys[0]!.publicKey, randomBytes(16), other, dealers, target);
          return signedDeal(auths[0]!, b, 1, m.commitments);
        },
      }),
      4,
      ErrorCode.BadProof,
      'round2',
    );
    // An echo relaying a deal dealer 1 never signed.
    const { group } = getSuite(suiteId);
    expectUnattributed(
      run({
        echo: (from, to, m) => {
          if (from !== 5 || to !== 3) return m;
          const d = m.packages[1]!;
          return { packages: { ...m.packages, 1: { ...d, commitments: [d.commitments[0]!, group.pointToBytes(group.mulBase(group.randomScalar())), d.commitments[2]!] } } };
        },
      }),
      3,
      ErrorCode.BadProof,
      'round3',
    );
    // A malformed echo.
    expectUnattributed(run({ echo: (from, to, m) => (from === 5 && to === 3 ? { packages: { 1: m.packages[1]! } } : m) }), 3, ErrorCode.BadMessage, 'round3');
    // A malformed confirmation.
    expectUnattributed(run({ confirm: (from, to, m) => (from === 5 && to === 3 ? { digest: new Uint8Array(3) } : m) }), 3, ErrorCode.BadMessage, 'finish');
  });

  it('a confirmation that differs releases no share and names nobody', () => {
    const keys = runDkg(suiteId, 2, 3);
    const outcomes = simulateReshare(keys, dealers, target, {
      auths: testAuthenticators(MAX_NODE),
      tamper: { confirm: (from, to, m) => (from === 5 && to === 3 ? { digest: randomBytes(32) } : m) },
    });
    const o = outcomes.get(3)!;
    expect(o.ok).toBe(false);
    if (!o.ok) {
      expect(o.error.code).toBe(ErrorCode.ConfirmationMismatch);
      expect(o.error.culprits).toEqual([]);
    }
  });

  it('a player holding another old package fails without blame (the digest differs)', () => {
    const keys = runDkg(suiteId, 2, 3);
    const stale = runDkg(suiteId, 2, 3)[0]!.publicKey;
    const outcomes = simulateReshare(keys, dealers, target, { auths: testAuthenticators(MAX_NODE), oldPackageOf: (i) => (i === 5 ? stale : keys[0]!.publicKey) });
    const o = outcomes.get(5)!;
    expect(o.ok).toBe(false);
    if (!o.ok) {
      expect(o.step).toBe('round2');
      expect(o.error.code).toBe(ErrorCode.ConfirmationMismatch);
    }
    for (const x of outcomes.values()) if (!x.ok) expect(x.error.culprits).toEqual([]);
  });
});

describe('reshare: bad inputs are clear BAD_PARAMETERS errors', () => {
  const keys = runDkg('secp256k1', 2, 3);
  const old = keys[0]!.publicKey;
  const [auth] = testAuthenticators(1);
  const target: ReshareTarget = { threshold: 2, indices: [2, 3, 4] };
  const base = (over: Partial<ReshareParams>): ReshareParams => ({
    suite: old.suite,
    sessionId: randomBytes(16),
    runId: randomBytes(32),
    self: 1,
    oldPackage: old,
    dealers: [1, 2],
    target,
    share: keys[0]!.secret,
    ...over,
  });
  const cases: [string, Partial<ReshareParams>, RegExp][] = [
    ['fewer dealers than the old threshold', { dealers: [1] }, /at least 2 dealers/],
    ['a dealer not in the old committee', { dealers: [1, 4] }, /dealer 4 holds no share/],
    ['a dealer twice', { dealers: [1, 1] }, /strictly ascending/],
    ['dealers not a list', { dealers: 'all' as never }, /dealers must be a list/],
    ['a new committee with a duplicate', { target: { threshold: 2, indices: [2, 3, 3] } }, /strictly ascending/],
    ['a new committee with node 0', { target: { threshold: 2, indices: [0, 1, 2] } }, /not an index/],
    ['a new committee with node 256', { target: { threshold: 2, indices: [1, 2, 256] } }, /not an index/],
    ['a threshold above the new committee', { target: { threshold: 4, indices: [2, 3, 4] } }, /threshold 4 must be 2\.\.3/],
    ['a threshold of 1', { target: { threshold: 1, indices: [2, 3, 4] } }, /threshold 1 must be 2\.\.3/],
    ['a new committee of one', { target: { threshold: 2, indices: [4] } }, /2\.\.255 nodes/],
    ['no target', { target: undefined as never }, /target/],
    ['a party in neither set', { self: 5 }, /neither a dealer nor in the new committee/],
    ['a dealer without its share', { share: undefined }, /share is required/],
    ['a non-dealer given a share', { self: 4 }, /not a dealer and must not be given a share/],
    ['another party\'s share', { share: keys[1]!.secret }, /party 2's, not party 1's/],
    ['a share that does not match its verifying share', { share: { ...keys[0]!.secret, value: keys[1]!.secret.value } }, /does not match its verifying share/],
    ['a package for another suite', { suite: 'ed25519' }, /suite secp256k1, the session for ed25519/],
    ['a package with a wrong verifying share', { oldPackage: { ...old, verifyingShares: [old.verifyingShares[1]!, ...old.verifyingShares.slice(1)] } }, /does not match the commitments/],
    ['a package whose committee is not its party count', { oldPackage: { ...old, indices: [1, 2] } }, /a committee of 2 nodes for 3 parties/],
    ['a package naming the committee 1..n (which is written without indices)', { oldPackage: { ...old, indices: [1, 2, 3] } }, /written without indices/],
  ];
  for (const [name, over, message] of cases) {
    it(name, () => {
      const e = thrown(() => reshareRound1(base(over), auth!));
      expect(e.code).toBe(ErrorCode.BadParameters);
      expect(e.message).toMatch(message);
      expect(e.culprits).toEqual([]);
    });
  }
  it('a share of another epoch is EPOCH_MISMATCH', () => {
    expect(thrown(() => reshareRound1(base({ share: { ...keys[0]!.secret, epoch: 1 } }), auth!)).code).toBe(ErrorCode.EpochMismatch);
  });
  it('session and run ids are checked', () => {
    expect(thrown(() => reshareRound1(base({ sessionId: randomBytes(4) }), auth!)).code).toBe(ErrorCode.BadInput);
    expect(thrown(() => reshareRound1(base({ runId: randomBytes(4) }), auth!)).code).toBe(ErrorCode.BadInput);
  });
  it('the pure API checks the same', () => {
    expect(thrown(() => dealReshare(old, keys[0]!.secret, { threshold: 4, indices: [1, 2, 3] })).code).toBe(ErrorCode.BadParameters);
    expect(thrown(() => resharedPackage(old, new Map([[1, []]]), target)).code).toBe(ErrorCode.BadParameters);
    expect(thrown(() => resharedPackage(old, new Map([[1, []], [9, []]]), target)).message).toMatch(/dealer 9 holds no share/);
    expect(thrown(() => checkDealerCommitments(old, 7, [], target)).code).toBe(ErrorCode.BadParameters);
  });
  it('a state is used once', () => {
    const r1 = reshareRound1(base({ self: 4, share: undefined }), auth!);
    reshareDiscard(r1.state);
    expect(thrown(() => reshareRound2(r1.state, new Map())).code).toBe(ErrorCode.BadState);
    expect(thrown(() => reshareRound3(r1.state as never, new Map())).code).toBe(ErrorCode.BadState);
    expect(String(r1.state)).not.toMatch(/[0-9a-f]{16}/);
  });
});

describe('reshare: the secret round state is wiped on every exit path', () => {
  const suiteId: SuiteId = 'ed25519';
  const dealers = [1, 2];
  const target: ReshareTarget = { threshold: 2, indices: [2, 3] };
  /** Dealer 2 is also a new party: it keeps g_2(2) between rounds. */
  function setup() {
    const keys = runDkg(suiteId, 2, 3);
    const auths = testAuthenticators(MAX_NODE);
    const sessionId = randomBytes(16);
    const runId = randomBytes(32);
    const params = (i: number): ReshareParams => ({
      suite: suiteId,
      sessionId,
      runId,
      self: i,
      oldPackage: keys[0]!.publicKey,
      dealers,
      target,
      ...(dealers.includes(i) ? { share: keys[i - 1]!.secret } : {}),
    });
    const r1 = new Map([1, 2, 3].map((i) => [i, reshareRound1(params(i), auths[i - 1]!)]));
    const dealsTo = (i: number) => new Map(dealers.filter((d) => d !== i).map((d) => [d, r1.get(d)!.deal!]));
    const round2 = () => new Map([1, 2, 3].map((i) => [i, reshareRound2(r1.get(i)!.state, dealsTo(i))]));
    const sharesTo = (i: number) => new Map(dealers.filter((d) => d !== i && target.indices.includes(i)).map((d) => [d, { share: Uint8Array.from(r1.get(d)!.shares!.get(i)!.share), signature: r1.get(d)!.shares!.get(i)!.signature }]));
    return { r1, dealsTo, round2, sharesTo };
  }
  const echoesTo = (r2: Map<number, { echo: ReshareEchoMsg }>, i: number) => new Map([1, 2, 3].filter((j) => j !== i).map((j) => [j, r2.get(j)!.echo]));
  const live = (state: unknown, count: number) => {
    const probe = reshareWipeProbe(state);
    expect(probe.count).toBe(count);
    expect(probe.allZero()).toBe(false);
    return probe;
  };

  it('round 1: a dealer that is not a new party keeps nothing secret; dealt sub-shares wipe by wipeShareMessages', () => {
    const { r1 } = setup();
    expect(reshareWipeProbe(r1.get(1)!.state).count).toBe(0);
    const sent = r1.get(1)!.shares!;
    expect([...sent.keys()]).toEqual([2, 3]);
    wipeShareMessages(sent);
    for (const m of sent.values()) expect(m.share.every((b) => b === 0)).toBe(true);
  });

  it('round 1 state aborted (timeout): discard wipes the dealer\'s own sub-share', () => {
    const { r1 } = setup();
    const probe = live(r1.get(2)!.state, 1);
    reshareDiscard(r1.get(2)!.state);
    expect(probe.allZero()).toBe(true);
    expect(r1.get(2)!.state.consumed).toBe(true);
  });

  it('round 2 fails (a missing deal, a badly signed deal): the own sub-share is wiped', () => {
    const { r1 } = setup();
    const probe = live(r1.get(2)!.state, 1);
    expect(thrown(() => reshareRound2(r1.get(2)!.state, new Map())).code).toBe(ErrorCode.UnexpectedParty);
    expect(probe.allZero()).toBe(true);
    const again = setup();
    const p2 = live(again.r1.get(2)!.state, 1);
    const deals = again.dealsTo(2);
    const d = deals.get(1)!;
    deals.set(1, { ...d, signature: new Uint8Array(d.signature.length) });
    expect(thrown(() => reshareRound2(again.r1.get(2)!.state, deals)).code).toBe(ErrorCode.BadProof);
    expect(p2.allZero()).toBe(true);
  });

  it('round 2 state aborted: discard wipes the own sub-share', () => {
    const { round2 } = setup();
    const r2 = round2();
    const probe = live(r2.get(2)!.state, 1);
    reshareDiscard(r2.get(2)!.state);
    expect(probe.allZero()).toBe(true);
  });

  it('round 3 fails (an unsigned sub-share, a missing echo): the own sub-share is wiped', () => {
    const { round2, sharesTo } = setup();
    const r2 = round2();
    const probe = live(r2.get(2)!.state, 1);
    const shares: Map<number, ReshareShareMsg> = sharesTo(2);
    shares.set(1, { share: getSuite(suiteId).group.scalarToBytes(7n), signature: randomBytes(16) });
    const e = thrown(() => reshareRound3(r2.get(2)!.state, echoesTo(r2, 2), shares));
    // Not signed by its dealer: it proves nothing to a third party, so nobody is named.
    expect(e.code).toBe(ErrorCode.BadMessage);
    expect(e.culprits).toEqual([]);
    expect(probe.allZero()).toBe(true);
    const again = setup().round2();
    const p2 = live(again.get(2)!.state, 1);
    expect(thrown(() => reshareRound3(again.get(2)!.state, new Map(), new Map())).code).toBe(ErrorCode.UnexpectedParty);
    expect(p2.allZero()).toBe(true);
  });

  it('round 3 succeeds: the own sub-share is wiped; the round 3 state holds the new share until finish', () => {
    const { round2, sharesTo } = setup();
    const r2 = round2();
    const probe = live(r2.get(2)!.state, 1);
    const r3 = new Map([1, 2, 3].map((i) => [i, reshareRound3(r2.get(i)!.state, echoesTo(r2, i), sharesTo(i))]));
    expect(probe.allZero()).toBe(true);
    expect(reshareWipeProbe(r3.get(1)!.state).count).toBe(0); // dealer 1 leaves the committee
    // Aborted while waiting for confirmations: discard wipes the new share.
    const p3 = live(r3.get(3)!.state, 1);
    reshareDiscard(r3.get(3)!.state);
    expect(p3.allZero()).toBe(true);
    // A confirmation that differs: no share is released, and it is wiped.
    const p2 = live(r3.get(2)!.state, 1);
    const confirms = new Map([1, 3].map((j) => [j, r3.get(j)!.confirm]));
    confirms.set(3, { digest: randomBytes(32) });
    expect(thrown(() => reshareFinish(r3.get(2)!.state, confirms)).code).toBe(ErrorCode.ConfirmationMismatch);
    expect(p2.allZero()).toBe(true);
  });

  it('finish succeeds: the share is released to the caller, not wiped', () => {
    const { round2, sharesTo } = setup();
    const r2 = round2();
    const r3 = new Map([1, 2, 3].map((i) => [i, reshareRound3(r2.get(i)!.state, echoesTo(r2, i), sharesTo(i))]));
    const confirmsTo = (i: number) => new Map([1, 2, 3].filter((j) => j !== i).map((j) => [j, r3.get(j)!.confirm]));
    const p3 = live(r3.get(3)!.state, 1);
    const done = reshareFinish(r3.get(3)!.state, confirmsTo(3));
    expect(p3.allZero()).toBe(false);
    expect(done.share!.value.every((b) => b === 0)).toBe(false);
    expect(r3.get(3)!.state.consumed).toBe(true);
    const leaving = reshareFinish(r3.get(1)!.state, confirmsTo(1));
    expect(leaving.share).toBeUndefined();
    expect(leaving.package).toEqual(done.package);
  });
});

describe('reshare wire messages', () => {
  it.each(SUITE_IDS)('%s: deal, share, echo and confirm round-trip strictly; the deal count is the new threshold', (suiteId) => {
    const keys = runDkg(suiteId, 2, 3);
    const target: ReshareTarget = { threshold: 3, indices: [3, 4, 5, 6] };
    const auths = testAuthenticators(MAX_NODE);
    const r1 = reshareRound1(
      { suite: suiteId, sessionId: randomBytes(16), runId: randomBytes(32), self: 1, oldPackage: keys[0]!.publicKey, dealers: [1, 2], target, share: keys[0]!.secret },
      auths[0]!,
    );
    const deal = decodeMessage(encodeMessage('reshare/deal', suiteId, r1.deal!), 'reshare/deal', suiteId, { threshold: 3 });
    expect(deal).toEqual(r1.deal);
    expect(() => decodeMessage(encodeMessage('reshare/deal', suiteId, r1.deal!), 'reshare/deal', suiteId, { threshold: 2 })).toThrow(
      expect.objectContaining({ code: ErrorCode.BadMessage }),
    );
    const share = r1.shares!.get(4)!;
    expect(decodeMessage(encodeMessage('reshare/share', suiteId, share), 'reshare/share', suiteId)).toEqual(share);
    const echo = { packages: { 1: r1.deal!, 2: r1.deal! } };
    expect(decodeMessage(encodeMessage('reshare/echo', suiteId, echo), 'reshare/echo', suiteId, { threshold: 3 })).toEqual(echo);
    const confirm = { digest: randomBytes(32) };
    expect(decodeMessage(encodeMessage('reshare/confirm', suiteId, confirm), 'reshare/confirm', suiteId)).toEqual(confirm);
    reshareDiscard(r1.state);
  });
});
