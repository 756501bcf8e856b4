/**
 * Issue 12 (DKLs23): the two-party multiplication F_RVOLE (core/ecdsa/mul.ts), ℓ = 2, on both curves.
 * One pairwise setup per curve serves every multiplication (distinct sids), as in signing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { NOBLE_GROUPS } from '../../core/suites.js';
import { bitAt } from '../../core/ecdsa/ot.js';
import { OTE_KAPPA } from '../../core/ecdsa/ote.js';
import {
  decodeMulAliceSetup,
  decodeMulBobSetup,
  encodeMulAliceSetup,
  encodeMulBobSetup,
  MUL_ALICE_MSG_LENGTH,
  MUL_XI,
  mulAliceRespond,
  mulBobFinish,
  mulBobStart,
  mulSetupLocal,
  setupAliceFinish,
  setupAliceProve,
  setupAliceRespond,
  setupBobChallenge,
  setupBobFinish,
  setupBobStart,
  wipeMulAliceSetup,
  wipeMulBobSetup,
  type CurveName,
  type MulAliceCheat,
  type MulAliceSetup,
  type MulBobCheat,
  type MulBobSetup,
} from '../../core/ecdsa/mul.js';

function thrown(f: () => unknown): TesseraError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return e as TesseraError;
  }
  throw new Error('expected a TesseraError, nothing was thrown');
}

const enc = new TextEncoder();
const CURVES: CurveName[] = ['secp256k1', 'P-256'];
const TAU_BYTES = MUL_XI * 4 * 32;
const colBytes = (MUL_XI + 208) / 8;

describe.each(CURVES)('DKLs23 multiplication on %s', (curve) => {
  const g = NOBLE_GROUPS[curve];
  const q = g.order;
  let alice: MulAliceSetup;
  let bob: MulBobSetup;
  let counter = 0;
  const freshSid = () => enc.encode(`mul-test/${curve}/${counter++}`);

  beforeAll(() => {
    ({ alice, bob } = mulSetupLocal(curve, enc.encode(`setup/${curve}`)));
  });

  function run(a: [bigint, bigint], opts: { bobCheat?: MulBobCheat; aliceCheat?: MulAliceCheat; sidA?: Uint8Array; tamper?: (m: Uint8Array) => void } = {}) {
    const sid = freshSid();
    const s = mulBobStart(bob, sid, opts.bobCheat);
    const r = mulAliceRespond(alice, opts.sidA ?? sid, a, s.msg, opts.aliceCheat);
    opts.tamper?.(r.msg);
    const cB = mulBobFinish(s.state, r.msg);
    return { b: s.b, cA: r.cA, cB, state: s.state };
  }
  const correct = (a: [bigint, bigint], o: { b: bigint; cA: [bigint, bigint]; cB: [bigint, bigint] }) =>
    [0, 1].every((k) => g.add(o.cA[k]!, o.cB[k]!) === g.mul(a[k]!, o.b));

  it('cA[k] + cB[k] = a[k]·b over many random instances sharing one setup, distinct sids', () => {
    const bs = new Set<bigint>();
    const inputs: [bigint, bigint][] = [[0n, q - 1n], [1n, 2n]];
    for (let n = 0; n < 24; n++) inputs.push([g.randomScalar(), g.randomScalar()]);
    for (const a of inputs) {
      const o = run(a);
      expect(o.b >= 0n && o.b < q).toBe(true);
      expect(correct(a, o)).toBe(true);
      bs.add(o.b);
    }
    expect(bs.size).toBe(inputs.length); // Bob's input is fresh each time
  });

  it('Bob\'s state is used once and its secret bytes are wiped, on success and on failure', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    const o = run(a);
    expect(o.state.beta.every((x) => x === 0) && o.state.rows.every((x) => x === 0)).toBe(true);
    expect(thrown(() => mulBobFinish(o.state, new Uint8Array(MUL_ALICE_MSG_LENGTH))).code).toBe(ErrorCode.BadState);
    const s = mulBobStart(bob, freshSid());
    expect(thrown(() => mulBobFinish(s.state, new Uint8Array(3))).code).toBe(ErrorCode.BadMessage);
    expect(s.state.beta.every((x) => x === 0) && s.state.rows.every((x) => x === 0)).toBe(true);
  });

  it('setups survive encode/decode; decoding is strict; a wiped setup no longer multiplies', () => {
    const a2 = decodeMulAliceSetup(encodeMulAliceSetup(alice));
    const b2 = decodeMulBobSetup(encodeMulBobSetup(bob));
    const sid = freshSid();
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    const s = mulBobStart(b2, sid);
    const r = mulAliceRespond(a2, sid, a, s.msg);
    expect(correct(a, { b: s.b, cA: r.cA, cB: mulBobFinish(s.state, r.msg) })).toBe(true);

    const ea = encodeMulAliceSetup(alice);
    const eb = encodeMulBobSetup(bob);
    expect(thrown(() => decodeMulAliceSetup(ea.subarray(1))).code).toBe(ErrorCode.BadMessage);
    expect(thrown(() => decodeMulBobSetup(ea)).code).toBe(ErrorCode.BadMessage);
    expect(thrown(() => decodeMulAliceSetup(eb)).code).toBe(ErrorCode.BadMessage);
    for (const [pos, val] of [[0, 9], [1, 0x42], [2, 7]] as const) {
      const bad = ea.slice();
      bad[pos] = val;
      expect(thrown(() => decodeMulAliceSetup(bad)).code).toBe(ErrorCode.BadMessage);
    }
    wipeMulAliceSetup(a2);
    wipeMulBobSetup(b2);
    expect(a2.seeds.every((x) => x === 0) && b2.seeds0.every((x) => x === 0) && b2.seeds1.every((x) => x === 0)).toBe(true);
    const s2 = mulBobStart(bob, sid);
    expect(thrown(() => mulAliceRespond(a2, sid, a, s2.msg)).code).toBe(ErrorCode.BadProof);
  });

  it('a cheating Bob using inconsistent choice bits across OT-extension columns is caught by Alice (KOS15 check)', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    const cheat: MulBobCheat = {
      corruptColumns: (cols) => {
        for (let i = 0; i < 64; i++) cols[i * colBytes + 7]! ^= 0x04;
      },
    };
    expect(thrown(() => run(a, { bobCheat: cheat })).code).toBe(ErrorCode.BadProof);
  });

  it('a single flipped column is caught exactly when Alice\'s Δ bit is 1; otherwise the product stays correct', () => {
    for (const i of [0, 5, 64, 127]) {
      const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
      const cheat: MulBobCheat = { corruptColumns: (cols) => void (cols[i * colBytes + 2]! ^= 0x01) };
      if (bitAt(alice.delta, i)) expect(thrown(() => run(a, { bobCheat: cheat })).code).toBe(ErrorCode.BadProof);
      else expect(correct(a, run(a, { bobCheat: cheat }))).toBe(true);
    }
    expect(alice.delta.length).toBe(OTE_KAPPA / 8);
  });

  it('a cheating Alice whose correlation differs across the OTs is caught by Bob (DKLs19 Protocol 1 check)', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    for (const k of [0, 1, 2, 3]) {
      const everyOther: MulAliceCheat = { correlation: (j, kk, v) => (kk === k && j % 2 === 1 ? v + 1n : v) };
      expect(thrown(() => run(a, { aliceCheat: everyOther })).code).toBe(ErrorCode.BadProof);
      // Even a consistent change to the pads is caught: u was computed from the true ones.
      const everywhere: MulAliceCheat = { correlation: (_j, kk, v) => (kk === k ? v + 5n : v) };
      expect(thrown(() => run(a, { aliceCheat: everywhere })).code).toBe(ErrorCode.BadProof);
    }
  });

  it('selective failure on one OT: Bob aborts exactly when his choice bit there is 1, and never outputs a wrong product', () => {
    let aborts = 0;
    for (let n = 0; n < 40; n++) {
      const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
      const cheat: MulAliceCheat = { correlation: (j, k, v) => (j === 17 && k === 0 ? v + 1n : v) };
      try {
        expect(correct(a, run(a, { aliceCheat: cheat }))).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(TesseraError);
        expect((e as TesseraError).code).toBe(ErrorCode.BadProof);
        aborts++;
      }
    }
    // β_17 is a fair coin: 40 runs without an abort (or without a pass) has probability 2^-40.
    expect(aborts).toBeGreaterThan(0);
    expect(aborts).toBeLessThan(40);
  });

  it('changes in transit to τ, u or r̃ make Bob throw BadProof', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    for (const off of [0, 40 * 32 + 31, TAU_BYTES - 1, TAU_BYTES + 31, TAU_BYTES + 63, MUL_ALICE_MSG_LENGTH - 1]) {
      // Keep the scalar canonical: flip a low bit.
      expect(thrown(() => run(a, { tamper: (m) => void (m[off | 31]! ^= 1) })).code).toBe(ErrorCode.BadProof);
    }
  });

  it('γ is Alice\'s choice of input: changing it changes the product consistently (checked by the signing protocol, not here)', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    const o = run(a, { tamper: (m) => m.set(numberToBytesBE(g.add(readScalar(m, TAU_BYTES + 64), 1n), 32), TAU_BYTES + 64) });
    expect(correct([g.add(a[0], 1n), a[1]], o)).toBe(true);
  });

  it('a wrong sid on Alice\'s side breaks the OT-extension check', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    expect(thrown(() => run(a, { sidA: enc.encode('some other sid') })).code).toBe(ErrorCode.BadProof);
  });

  it('malformed and truncated messages and bad inputs throw clear errors', () => {
    const a: [bigint, bigint] = [g.randomScalar(), g.randomScalar()];
    const sid = freshSid();
    const s = mulBobStart(bob, sid);
    expect(thrown(() => mulAliceRespond(alice, sid, a, s.msg.subarray(0, s.msg.length - 1))).code).toBe(ErrorCode.BadMessage);
    expect(thrown(() => mulAliceRespond(alice, sid, a, new Uint8Array(0))).code).toBe(ErrorCode.BadMessage);
    expect(thrown(() => mulAliceRespond(alice, sid, [q, 1n], s.msg)).code).toBe(ErrorCode.BadScalar);
    expect(thrown(() => mulAliceRespond(alice, sid, [-1n, 1n], s.msg)).code).toBe(ErrorCode.BadScalar);
    expect(thrown(() => mulAliceRespond(alice, sid, [1n] as unknown as [bigint, bigint], s.msg)).code).toBe(ErrorCode.BadScalar);
    expect(thrown(() => mulBobStart(bob, new Uint8Array(0))).code).toBe(ErrorCode.BadInput);
    const r = mulAliceRespond(alice, sid, a, s.msg);
    const nonCanonical = r.msg.slice();
    nonCanonical.set(numberToBytesBE(q, 32), 32 * 5);
    const e = thrown(() => mulBobFinish(s.state, nonCanonical));
    expect(e.code).toBe(ErrorCode.BadMessage);
    expect(e.message).toMatch(/canonical/);
    const s2 = mulBobStart(bob, freshSid());
    expect(thrown(() => mulBobFinish(s2.state, r.msg.subarray(0, r.msg.length - 32))).code).toBe(ErrorCode.BadMessage);
  });

  it('the setup binds its sid and refuses out-of-order or malformed steps', () => {
    const b1 = setupBobStart(curve, enc.encode('s1'));
    expect(thrown(() => setupAliceRespond(curve, enc.encode('s2'), b1.msg)).code).toBe(ErrorCode.BadProof);
    expect(thrown(() => setupAliceRespond(curve, enc.encode('s1'), b1.msg.subarray(2))).code).toBe(ErrorCode.BadMessage);
    const a2 = setupAliceRespond(curve, enc.encode('s1'), b1.msg);
    expect(thrown(() => setupAliceFinish(a2.state, new Uint8Array(OTE_KAPPA * 64))).code).toBe(ErrorCode.BadState);
    const b3 = setupBobChallenge(b1.state, a2.msg);
    const a4 = setupAliceProve(a2.state, b3.msg);
    const bad4 = a4.msg.slice();
    bad4[0]! ^= 1;
    expect(thrown(() => setupBobFinish(b1.state, bad4)).code).toBe(ErrorCode.BadProof);
  });
});

function readScalar(m: Uint8Array, off: number): bigint {
  let v = 0n;
  for (let i = 0; i < 32; i++) v = (v << 8n) | BigInt(m[off + i]!);
  return v;
}
