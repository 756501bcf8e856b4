/**
 * core/ecdsa/dkls23.ts: DKLs23 threshold ECDSA signing (ePrint 2023/765, Protocol 3.6) over the real
 * two-party multiplication of core/ecdsa/mul.ts, on secp256k1 and P-256.
 *
 * Keys: Shamir shares of a random x made directly with core/shamir.ts (the DKG integration is a later
 * step) and H1's pairwise multiplication setup run locally for every ordered pair.
 * - 2-of-3 and 3-of-5: every t-subset signs; every signature verifies in node:crypto (OpenSSL, DER and
 *   IEEE P1363) and, on secp256k1, in libsecp256k1 (tiny-secp256k1), whose recovery returns the group key.
 * - Presigning: rounds 1–2 and the message-free part of round 3 run before the message is known; a
 *   presignature signs once.
 * - A cheating signer (bad decommitment, inconsistent Γ^u or Γ^v, wrong ψ, malformed message, wrong final
 *   share) makes the session abort; no wrong signature is ever output; an honest signer is never named.
 * - Secret round state is wiped and cannot be used twice.
 */
import { createHash, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { recover as tinyRecover, verify as tinyVerify } from 'tiny-secp256k1';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  combine,
  discardSignState,
  presign,
  signRound1,
  signRound2,
  signRound3,
  signStateWipeProbe,
  signWithPresignature,
  type EcdsaKeyPackage,
  type EcdsaSigningKey,
  type Round1Broadcast,
  type Round1Direct,
  type Round2Broadcast,
  type Round2Direct,
  type Round3Broadcast,
} from '../../core/ecdsa/dkls23.js';
import { mulSetupLocal, type MulAliceSetup, type MulBobSetup } from '../../core/ecdsa/mul.js';
import { verifyEcdsa, type EcdsaCurveName, type FinalEcdsaSignature } from '../../core/ecdsa/signature.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { split } from '../../core/shamir.js';
import { P256, SECP256K1 } from '../../core/suites.js';

const CURVES: readonly EcdsaCurveName[] = ['secp256k1', 'P-256'];
const NOBLE = { secp256k1, 'P-256': p256 } as const;
const groupOf = (curve: EcdsaCurveName) => (curve === 'secp256k1' ? SECP256K1.group : P256.group);

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * The pairwise multiplication setups for players 1..5, made once per curve and shared by every key of
 * this file: a setup does not depend on the key's shares (the node runs it per key; here it is run
 * once because each one costs about a second).
 */
const SETUPS = new Map<EcdsaCurveName, { alice: Map<number, MulAliceSetup>[]; bob: Map<number, MulBobSetup>[] }>();
const MAX_PLAYERS = 5;

function pairSetups(curve: EcdsaCurveName): { alice: Map<number, MulAliceSetup>[]; bob: Map<number, MulBobSetup>[] } {
  const hit = SETUPS.get(curve);
  if (hit) return hit;
  const setupId = randomBytes(16);
  const alice = Array.from({ length: MAX_PLAYERS + 1 }, () => new Map<number, MulAliceSetup>());
  const bob = Array.from({ length: MAX_PLAYERS + 1 }, () => new Map<number, MulBobSetup>());
  for (let a = 1; a <= MAX_PLAYERS; a++) {
    for (let b = 1; b <= MAX_PLAYERS; b++) {
      if (a === b) continue;
      const sid = createHash('sha256').update(setupId).update(Uint8Array.of(a, b)).digest();
      const made = mulSetupLocal(curve, sid);
      alice[a]!.set(b, made.alice);
      bob[b]!.set(a, made.bob);
    }
  }
  const out = { alice, bob };
  SETUPS.set(curve, out);
  return out;
}

/** Shamir shares of a random x (core/shamir.ts), the public package, and every player's setups. */
function makeKeys(curve: EcdsaCurveName, t: number, n: number): EcdsaSigningKey[] {
  const group = groupOf(curve);
  const x = group.randomScalar();
  const { shares } = split(group, x, t, n);
  const pkg: EcdsaKeyPackage = {
    curve,
    threshold: t,
    groupKey: group.pointToBytes(group.mulBase(x)),
    verifyingShares: shares.map((s) => group.pointToBytes(group.mulBase(s))),
  };
  const setups = pairSetups(curve);
  const only = <V>(m: Map<number, V>): Map<number, V> => new Map([...m].filter(([j]) => j <= n));
  return shares.map((s, k) => ({
    pkg,
    index: k + 1,
    share: group.scalarToBytes(s),
    mulAlice: only(setups.alice[k + 1]!),
    mulBob: only(setups.bob[k + 1]!),
  }));
}

function subsets(n: number, t: number): number[][] {
  const out: number[][] = [];
  const rec = (start: number, acc: number[]): void => {
    if (acc.length === t) return void out.push([...acc]);
    for (let i = start; i <= n; i++) rec(i + 1, [...acc, i]);
  };
  rec(1, []);
  return out;
}

// ---------------------------------------------------------------------------------------------
// A local run of the protocol, with an optional cheating signer

/** How a cheater changes what it sends (each hook returns the message actually sent). */
interface Tamper {
  readonly cheater: number;
  round1?: (to: number, b: Round1Broadcast, d: Round1Direct) => { b: Round1Broadcast; d: Round1Direct };
  /** The broadcast and the direct message of round 2, merged (a per-recipient broadcast models equivocation). */
  round2?: (to: number, m: Round2Broadcast & Round2Direct) => Round2Broadcast & Round2Direct;
  round3?: (m: Round3Broadcast) => Round3Broadcast;
}

interface Outcome {
  /** The signature of every party that finished (all equal when present). */
  readonly signatures: Map<number, FinalEcdsaSignature>;
  /** The error of every party that aborted, and the round it aborted in. */
  readonly errors: Map<number, TesseraError>;
  readonly round: number;
}

function runSigning(keys: EcdsaSigningKey[], signers: number[], digest: Uint8Array, tamper?: Tamper): Outcome {
  const sessionId = randomBytes(32);
  const errors = new Map<number, TesseraError>();
  const attempt = <T>(i: number, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (e) {
      expect(e).toBeInstanceOf(TesseraError);
      errors.set(i, e as TesseraError);
      return undefined;
    }
  };
  const done = (round: number): Outcome | undefined => (errors.size > 0 ? { signatures: new Map(), errors, round } : undefined);

  // Round 1
  const r1 = new Map(signers.map((i) => [i, signRound1(keys[i - 1]!, sessionId, signers)]));
  const b1To = (to: number, from: number): Round1Broadcast => {
    const m = r1.get(from)!;
    return tamper?.round1 && from === tamper.cheater ? tamper.round1(to, m.broadcast, m.direct.get(to)!).b : m.broadcast;
  };
  const d1To = (to: number, from: number): Round1Direct => {
    const m = r1.get(from)!;
    return tamper?.round1 && from === tamper.cheater ? tamper.round1(to, m.broadcast, m.direct.get(to)!).d : m.direct.get(to)!;
  };
  // Round 2
  const r2 = new Map<number, ReturnType<typeof signRound2>>();
  for (const i of signers) {
    const peers = signers.filter((j) => j !== i);
    const res = attempt(i, () =>
      signRound2(r1.get(i)!.state, new Map(peers.map((j) => [j, b1To(i, j)])), new Map(peers.map((j) => [j, d1To(i, j)]))),
    );
    if (res) r2.set(i, res);
  }
  const abort2 = done(2);
  if (abort2) return abort2;
  const m2To = (to: number, from: number): { b: Round2Broadcast; d: Round2Direct } => {
    const b = r2.get(from)!.broadcast;
    const d = r2.get(from)!.direct.get(to)!;
    if (!(tamper?.round2 && from === tamper.cheater)) return { b, d };
    const { R, salt, ...rest } = tamper.round2(to, { ...b, ...d });
    return { b: { R, salt }, d: rest };
  };
  // Round 3
  const r3 = new Map<number, ReturnType<typeof signRound3>>();
  for (const i of signers) {
    const peers = signers.filter((j) => j !== i);
    const res = attempt(i, () =>
      signRound3(r2.get(i)!.state, new Map(peers.map((j) => [j, m2To(i, j).b])), new Map(peers.map((j) => [j, m2To(i, j).d])), digest),
    );
    if (res) r3.set(i, res);
  }
  const abort3 = done(3);
  if (abort3) return abort3;
  const b3 = new Map(
    signers.map((j) => {
      const m = r3.get(j)!.broadcast;
      return [j, tamper?.round3 && j === tamper.cheater ? tamper.round3(m) : m];
    }),
  );
  // Combine (each party sees its own true broadcast).
  const signatures = new Map<number, FinalEcdsaSignature>();
  for (const i of signers) {
    const mine = new Map(b3);
    mine.set(i, r3.get(i)!.broadcast);
    const sig = attempt(i, () => combine(r3.get(i)!.state, mine));
    if (sig) signatures.set(i, sig);
  }
  return { signatures, errors, round: 4 };
}

// ---------------------------------------------------------------------------------------------
// Independent verifiers

const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

function nodePublicKey(curve: EcdsaCurveName, publicKey: Uint8Array): KeyObject {
  const raw = NOBLE[curve].Point.fromBytes(publicKey).toBytes(false);
  return createPublicKey({ key: { kty: 'EC', crv: curve, x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33)) }, format: 'jwk' });
}

function checkEverywhere(sig: FinalEcdsaSignature, message: Uint8Array, groupKey: Uint8Array): void {
  const digest = createHash('sha256').update(message).digest();
  const key = nodePublicKey(sig.curve, groupKey);
  expect(nodeVerify('sha256', message, { key, dsaEncoding: 'der' }, sig.der)).toBe(true);
  expect(nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig.compact)).toBe(true);
  expect(verifyEcdsa(sig, digest, groupKey, { lowS: true })).toBe(true);
  if (sig.curve === 'secp256k1') {
    expect(tinyVerify(digest, groupKey, sig.compact, true)).toBe(true);
    const recovered = tinyRecover(digest, sig.compact, sig.recovery as 0 | 1 | 2 | 3, true);
    expect(recovered !== null && Buffer.from(recovered).equals(Buffer.from(groupKey))).toBe(true);
  }
}

/** Only the honest signers' outcomes count (the cheater may well finish with its own view). */
function expectAbortBlaming(outcome: Outcome, cheater: number, allowed: readonly number[]): void {
  const honestSignatures = [...outcome.signatures.keys()].filter((i) => i !== cheater);
  const honestErrors = [...outcome.errors].filter(([i]) => i !== cheater);
  // Never a wrong signature, and no honest signer outputs anything.
  expect(honestSignatures).toEqual([]);
  expect(honestErrors.length).toBeGreaterThan(0);
  for (const [, e] of honestErrors) {
    // An honest signer is never named; the cheater only where the check is third-party verifiable.
    expect(e.culprits.every((c) => c === cheater && allowed.includes(c))).toBe(true);
  }
}

// ---------------------------------------------------------------------------------------------

describe.each(CURVES)('DKLs23 signing on %s', (curve) => {
  for (const [t, n] of [
    [2, 3],
    [3, 5],
  ] as const) {
    it(`${t}-of-${n}: every ${t}-subset signs; node:crypto${curve === 'secp256k1' ? ' and libsecp256k1 (verify, recover)' : ''} accept every signature`, () => {
      const keys = makeKeys(curve, t, n);
      for (const signers of subsets(n, t)) {
        const message = randomBytes(50);
        const digest = createHash('sha256').update(message).digest();
        const out = runSigning(keys, signers, digest);
        expect([...out.errors.values()]).toEqual([]);
        expect(out.signatures.size).toBe(t);
        const [first] = out.signatures.values();
        for (const s of out.signatures.values()) expect(Buffer.from(s.der).equals(Buffer.from(first!.der))).toBe(true);
        checkEverywhere(first!, message, keys[0]!.pkg.groupKey);
      }
    });
  }

  it('presigning: rounds 1–2 and presign run without the message; the presignature signs one message later and never a second', () => {
    const keys = makeKeys(curve, 2, 3);
    const signers = [1, 3];
    const sessionId = randomBytes(32);
    const r1 = new Map(signers.map((i) => [i, signRound1(keys[i - 1]!, sessionId, signers)]));
    const other = (i: number): number => (i === 1 ? 3 : 1);
    const r2 = new Map(
      signers.map((i) => {
        const j = other(i);
        return [i, signRound2(r1.get(i)!.state, new Map([[j, r1.get(j)!.broadcast]]), new Map([[j, r1.get(j)!.direct.get(i)!]]))];
      }),
    );
    const presigs = new Map(
      signers.map((i) => {
        const j = other(i);
        return [i, presign(r2.get(i)!.state, new Map([[j, r2.get(j)!.broadcast]]), new Map([[j, r2.get(j)!.direct.get(i)!]]))];
      }),
    );
    // The message arrives only now.
    const message = randomBytes(10);
    const digest = createHash('sha256').update(message).digest();
    const r3 = new Map(signers.map((i) => [i, signWithPresignature(presigs.get(i)!, digest)]));
    for (const i of signers) {
      expect(signStateWipeProbe(presigs.get(i)!).allZero()).toBe(true);
      expect(() => signWithPresignature(presigs.get(i)!, digest)).toThrow(expect.objectContaining({ code: ErrorCode.BadState }));
    }
    const b3 = new Map(signers.map((i) => [i, r3.get(i)!.broadcast]));
    // combine checks that this player's own entry is what it sent, and that every signer is present.
    const forged = new Map(b3);
    forged.set(1, r3.get(3)!.broadcast);
    expect(() => combine(r3.get(1)!.state, forged)).toThrow(expect.objectContaining({ code: ErrorCode.BadInput }));
    expect(() => combine(r3.get(1)!.state, new Map([[1, b3.get(1)!]]))).toThrow(expect.objectContaining({ code: ErrorCode.UnexpectedParty }));
    const sig = combine(r3.get(1)!.state, b3);
    expect(Buffer.from(combine(r3.get(3)!.state, b3).der).equals(Buffer.from(sig.der))).toBe(true);
    checkEverywhere(sig, message, keys[0]!.pkg.groupKey);
  });

  it('round states are wiped after use and refuse a second use; discardSignState wipes an abandoned state', () => {
    const keys = makeKeys(curve, 2, 3);
    const signers = [2, 3];
    const sessionId = randomBytes(32);
    const a = signRound1(keys[1]!, sessionId, signers);
    const b = signRound1(keys[2]!, sessionId, signers);
    const probe1 = signStateWipeProbe(a.state);
    expect(probe1.count).toBeGreaterThan(0);
    expect(probe1.allZero()).toBe(false);
    const a2 = signRound2(a.state, new Map([[3, b.broadcast]]), new Map([[3, b.direct.get(2)!]]));
    expect(probe1.allZero()).toBe(true);
    expect(() => signRound2(a.state, new Map([[3, b.broadcast]]), new Map([[3, b.direct.get(2)!]]))).toThrow(
      expect.objectContaining({ code: ErrorCode.BadState }),
    );
    const probe2 = signStateWipeProbe(a2.state);
    expect(probe2.allZero()).toBe(false);
    discardSignState(a2.state);
    expect(probe2.allZero()).toBe(true);
    expect(() => presign(a2.state, new Map(), new Map())).toThrow(expect.objectContaining({ code: ErrorCode.BadState }));
    // A round that fails on a bad input still wipes its state.
    const c = signRound1(keys[1]!, sessionId, signers);
    const probe3 = signStateWipeProbe(c.state);
    expect(() => signRound2(c.state, new Map(), new Map())).toThrow(TesseraError);
    expect(probe3.allZero()).toBe(true);
  });

  it('bad inputs are refused before any work: wrong signer count, absent signer, short session id, a share that does not match', () => {
    const keys = makeKeys(curve, 2, 3);
    const sid = randomBytes(32);
    expect(() => signRound1(keys[0]!, sid, [1, 2, 3])).toThrow(expect.objectContaining({ code: ErrorCode.BadParameters }));
    expect(() => signRound1(keys[0]!, sid, [2, 3])).toThrow(expect.objectContaining({ code: ErrorCode.BadParameters }));
    expect(() => signRound1(keys[0]!, sid, [1, 1])).toThrow(expect.objectContaining({ code: ErrorCode.BadParameters }));
    expect(() => signRound1(keys[0]!, randomBytes(8), [1, 2])).toThrow(expect.objectContaining({ code: ErrorCode.BadInput }));
    const wrong = { ...keys[0]!, share: keys[1]!.share };
    expect(() => signRound1(wrong, sid, [1, 2])).toThrow(expect.objectContaining({ code: ErrorCode.BadShare }));
  });

  describe('a cheating signer makes the session abort, never yields a wrong signature, and no honest signer is named', () => {
    const group = groupOf(curve);
    const G = group.base;
    const bump = (p: Uint8Array): Uint8Array => group.pointToBytes(group.addPoints(group.pointFromBytes(p, 'p'), G));
    const digest = randomBytes(32);
    const signers = [1, 2, 3];
    const cheater = 2;
    let keys: EcdsaSigningKey[] = [];
    beforeAll(() => {
      keys = makeKeys(curve, 3, 5);
    });

    it('a decommitment that does not open its commitment (Protocol 3.6 step 8): the cheater is named', () => {
      const out = runSigning(keys, signers, digest, { cheater, round2: (_to, m) => ({ ...m, salt: randomBytes(32) }) });
      expect(out.round).toBe(3);
      expectAbortBlaming(out, cheater, [cheater]);
      for (const i of [1, 3]) {
        expect(out.errors.get(i)?.code).toBe(ErrorCode.BadProof);
        expect(out.errors.get(i)?.culprits).toEqual([cheater]);
      }
    });

    it('a different R_j than committed (opening to another point) is caught the same way', () => {
      const out = runSigning(keys, signers, digest, { cheater, round2: (_to, m) => ({ ...m, R: bump(m.R) }) });
      expectAbortBlaming(out, cheater, [cheater]);
      expect(out.errors.get(1)?.culprits).toEqual([cheater]);
    });

    it('an inconsistent Γ^u (step 8 check on u): abort, no one named', () => {
      const out = runSigning(keys, signers, digest, { cheater, round2: (to, m) => (to === 3 ? { ...m, gammaU: bump(m.gammaU) } : m) });
      expect(out.round).toBe(3);
      expectAbortBlaming(out, cheater, []);
      expect(out.errors.get(3)?.code).toBe(ErrorCode.SessionAborted);
      expect(out.errors.get(3)?.culprits).toEqual([]);
    });

    it('an inconsistent Γ^v (step 8 check on v against pk_j): abort, no one named', () => {
      const out = runSigning(keys, signers, digest, { cheater, round2: (_to, m) => ({ ...m, gammaV: bump(m.gammaV) }) });
      expectAbortBlaming(out, cheater, []);
      expect(out.errors.get(1)?.code).toBe(ErrorCode.SessionAborted);
    });

    it('a malformed Γ (not a curve point) is a malformed message: the cheater is named', () => {
      const out = runSigning(keys, signers, digest, { cheater, round2: (_to, m) => ({ ...m, gammaU: new Uint8Array(33).fill(0xff) }) });
      expectAbortBlaming(out, cheater, [cheater]);
      expect(out.errors.get(1)?.code).toBe(ErrorCode.BadMessage);
    });

    it('a wrong ψ passes the Γ checks but the final signature does not verify: abort at combine, no one named', () => {
      const out = runSigning(keys, signers, digest, {
        cheater,
        round2: (_to, m) => ({ ...m, psi: group.scalarToBytes(group.add(group.scalarFromBytes(m.psi, 'psi', true), 1n)) }),
      });
      expect(out.round).toBe(4);
      expectAbortBlaming(out, cheater, []);
      for (const e of out.errors.values()) expect(e.code).toBe(ErrorCode.VerificationFailed);
    });

    it('a wrong final share w_j (step 10 verification): abort at combine, no one named', () => {
      const out = runSigning(keys, signers, digest, {
        cheater,
        round3: (m) => ({ ...m, w: group.scalarToBytes(group.add(group.scalarFromBytes(m.w, 'w', true), 1n)) }),
      });
      expect(out.round).toBe(4);
      expectAbortBlaming(out, cheater, []);
      for (const i of [1, 3]) expect(out.errors.get(i)?.code).toBe(ErrorCode.VerificationFailed);
    });

    it('a wrong final share u_j: abort at combine, no one named', () => {
      const out = runSigning(keys, signers, digest, {
        cheater,
        round3: (m) => ({ ...m, u: group.scalarToBytes(group.add(group.scalarFromBytes(m.u, 'u', true), 1n)) }),
      });
      expectAbortBlaming(out, cheater, []);
    });

    it('a tampered multiplication message (F_RVOLE) makes the session abort; no honest signer is named', () => {
      const out = runSigning(keys, signers, digest, {
        cheater,
        round2: (_to, m) => {
          const mul = Uint8Array.from(m.mul);
          mul[mul.length - 1]! ^= 1;
          return { ...m, mul };
        },
      });
      expectAbortBlaming(out, cheater, [cheater]);
    });

    it('a tampered first multiplication message (Bob to Alice, the selective-failure position) makes the session abort; no honest signer is named', () => {
      const out = runSigning(keys, signers, digest, {
        cheater,
        round1: (_to, b, d) => {
          const mul = Uint8Array.from(d.mul);
          mul[Math.floor(mul.length / 2)]! ^= 0x40;
          return { b, d: { mul } };
        },
      });
      expectAbortBlaming(out, cheater, [cheater]);
    });

    it('messages of another session do not open this session\'s commitments', () => {
      // The cheater replays a valid commitment of its own from another session (same key, same signers).
      const other = signRound1(keys[cheater - 1]!, randomBytes(32), signers);
      const out = runSigning(keys, signers, digest, { cheater, round1: (_to, _b, d) => ({ b: other.broadcast, d }) });
      expectAbortBlaming(out, cheater, [cheater]);
      discardSignState(other.state);
    });
  });
});
