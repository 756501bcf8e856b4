/**
 * Issue 12 (DKLs23): the base OT (core/ecdsa/ot.ts, DKLs18 Protocol 7 VSOT) and the OT extension
 * (core/ecdsa/ote.ts, KOS15 Fig. 7), honest and with a cheating party.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import {
  bitAt,
  PAD_LENGTH,
  vsotReceiverFinish,
  vsotReceiverProve,
  vsotReceiverRespond,
  vsotSenderChallenge,
  vsotSenderStart,
  vsotSenderVerify,
  type CurveName,
} from '../../core/ecdsa/ot.js';
import { kosMessageLength, kosReceiverExtend, kosSenderExtend, OTE_KAPPA, ROW_BYTES, tccrHash, tccrKey } from '../../core/ecdsa/ote.js';

function thrown(f: () => unknown): TesseraError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return e as TesseraError;
  }
  throw new Error('expected a TesseraError, nothing was thrown');
}

const CURVES: CurveName[] = ['secp256k1', 'P-256'];
const N = 16; // OT count for the VSOT tests (the setup uses 128)
const sid = new TextEncoder().encode('vsot-test-session');

function pad(pads: Uint8Array, i: number): Uint8Array {
  return pads.subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH);
}

describe.each(CURVES)('VSOT (DKLs18 Protocol 7) on %s', (curve) => {
  it('honest run: the receiver gets exactly the pad of its choice bit', () => {
    const choices = new Uint8Array(randomBytes(N / 8));
    const s1 = vsotSenderStart(curve, sid, N);
    const r2 = vsotReceiverRespond(curve, sid, N, choices, s1.msg);
    const m3 = vsotSenderChallenge(s1.state, r2.msg);
    const m4 = vsotReceiverProve(r2.state, m3);
    const s5 = vsotSenderVerify(s1.state, m4);
    const mine = vsotReceiverFinish(r2.state, s5.msg);
    for (let i = 0; i < N; i++) {
      const w = bitAt(choices, i);
      expect(pad(mine, i)).toEqual(pad(w ? s5.pads1 : s5.pads0, i));
      expect(pad(mine, i)).not.toEqual(pad(w ? s5.pads0 : s5.pads1, i));
    }
  });

  it('a bad proof of knowledge (tampered z or B) makes the receiver throw BadProof', () => {
    const s1 = vsotSenderStart(curve, sid, N);
    const z = s1.msg.slice();
    z[z.length - 1]! ^= 1;
    expect(thrown(() => vsotReceiverRespond(curve, sid, N, new Uint8Array(N / 8), z)).code).toBe(ErrorCode.BadProof);
    // Replace B by another valid point: the proof no longer fits it.
    const other = vsotSenderStart(curve, sid, N).msg;
    const swapped = s1.msg.slice();
    swapped.set(other.subarray(0, 33), 0);
    expect(thrown(() => vsotReceiverRespond(curve, sid, N, new Uint8Array(N / 8), swapped)).code).toBe(ErrorCode.BadProof);
  });

  it('a proof for another session id does not verify', () => {
    const s1 = vsotSenderStart(curve, sid, N);
    const e = thrown(() => vsotReceiverRespond(curve, new TextEncoder().encode('other'), N, new Uint8Array(N / 8), s1.msg));
    expect(e.code).toBe(ErrorCode.BadProof);
  });

  it('malformed messages throw clear errors before any crypto', () => {
    const s1 = vsotSenderStart(curve, sid, N);
    expect(thrown(() => vsotReceiverRespond(curve, sid, N, new Uint8Array(N / 8), s1.msg.subarray(1))).code).toBe(ErrorCode.BadMessage);
    const offCurve = s1.msg.slice();
    offCurve.fill(0xff, 1, 33); // x = 2^256 − 1 is not a field element
    expect(thrown(() => vsotReceiverRespond(curve, sid, N, new Uint8Array(N / 8), offCurve)).code).toBe(ErrorCode.BadPoint);
    // Each malformed message 2 is refused, and ends that sender's run (the state is one-shot).
    const fresh = () => {
      const s = vsotSenderStart(curve, sid, N);
      return { s, r: vsotReceiverRespond(curve, sid, N, new Uint8Array(N / 8), s.msg) };
    };
    let f = fresh();
    expect(thrown(() => vsotSenderChallenge(f.s.state, f.r.msg.subarray(0, 33 * (N - 1)))).code).toBe(ErrorCode.BadMessage);
    expect(thrown(() => vsotSenderChallenge(f.s.state, f.r.msg)).code).toBe(ErrorCode.BadState);
    f = fresh();
    const zeroPoint = f.r.msg.slice();
    zeroPoint.fill(0, 0, 33);
    expect(thrown(() => vsotSenderChallenge(f.s.state, zeroPoint)).code).toBe(ErrorCode.BadPoint);
    // A_i = B is refused (its second pad would hash the identity).
    f = fresh();
    const isB = f.r.msg.slice();
    isB.set(f.s.msg.subarray(0, 33), 0);
    expect(thrown(() => vsotSenderChallenge(f.s.state, isB)).code).toBe(ErrorCode.BadMessage);
    // Out of order: verify before challenge.
    f = fresh();
    expect(thrown(() => vsotSenderVerify(f.s.state, new Uint8Array(N * 32))).code).toBe(ErrorCode.BadState);
    const m3 = vsotSenderChallenge(f.s.state, f.r.msg);
    expect(thrown(() => vsotSenderChallenge(f.s.state, f.r.msg)).code).toBe(ErrorCode.BadState);
    expect(thrown(() => vsotReceiverProve(f.r.state, m3.subarray(5))).code).toBe(ErrorCode.BadMessage);
    expect(thrown(() => vsotReceiverProve(f.r.state, m3)).code).toBe(ErrorCode.BadState);
  });

  it('a receiver that answers the challenge wrongly makes the sender throw BadProof', () => {
    const s1 = vsotSenderStart(curve, sid, N);
    const r2 = vsotReceiverRespond(curve, sid, N, new Uint8Array(randomBytes(N / 8)), s1.msg);
    const m4 = vsotReceiverProve(r2.state, vsotSenderChallenge(s1.state, r2.msg));
    m4[3 * PAD_LENGTH]! ^= 0x80;
    expect(thrown(() => vsotSenderVerify(s1.state, m4)).code).toBe(ErrorCode.BadProof);
  });

  it('a sender whose opening is wrong makes the receiver throw BadProof', () => {
    for (const which of [0, 1]) {
      const s1 = vsotSenderStart(curve, sid, N);
      const r2 = vsotReceiverRespond(curve, sid, N, new Uint8Array(randomBytes(N / 8)), s1.msg);
      const s5 = vsotSenderVerify(s1.state, vsotReceiverProve(r2.state, vsotSenderChallenge(s1.state, r2.msg)));
      s5.msg[(2 * 5 + which) * PAD_LENGTH]! ^= 1; // OT 5, opening of pad `which`
      expect(thrown(() => vsotReceiverFinish(r2.state, s5.msg)).code).toBe(ErrorCode.BadProof);
    }
  });

  it('a sender that tampers with a challenge is caught by one of the two checks', () => {
    const s1 = vsotSenderStart(curve, sid, N);
    const r2 = vsotReceiverRespond(curve, sid, N, new Uint8Array(randomBytes(N / 8)), s1.msg);
    const m3 = vsotSenderChallenge(s1.state, r2.msg);
    m3[0]! ^= 1;
    const m4 = vsotReceiverProve(r2.state, m3);
    let caught = false;
    try {
      const s5 = vsotSenderVerify(s1.state, m4);
      vsotReceiverFinish(r2.state, s5.msg);
    } catch (e) {
      caught = e instanceof TesseraError && e.code === ErrorCode.BadProof;
    }
    expect(caught).toBe(true);
  });
});

describe('KOS15 OT extension with its correlation check', () => {
  const m = 416;
  function seeds() {
    const delta = new Uint8Array(randomBytes(OTE_KAPPA / 8));
    const s0 = new Uint8Array(randomBytes(OTE_KAPPA * PAD_LENGTH));
    const s1 = new Uint8Array(randomBytes(OTE_KAPPA * PAD_LENGTH));
    const sd = new Uint8Array(OTE_KAPPA * PAD_LENGTH);
    for (let i = 0; i < OTE_KAPPA; i++) sd.set((bitAt(delta, i) ? s1 : s0).subarray(i * PAD_LENGTH, (i + 1) * PAD_LENGTH), i * PAD_LENGTH);
    return { delta, s0, s1, sd };
  }
  const colBytes = (m + 208) / 8;

  it('honest extension: q_j = t_j ⊕ x_j·Δ on every row, for many session ids', () => {
    const k = seeds();
    for (let n = 0; n < 5; n++) {
      const s = new Uint8Array([n, 7]);
      const r = kosReceiverExtend(k.s0, k.s1, s, m);
      const q = kosSenderExtend(k.delta, k.sd, s, m, r.msg);
      for (let j = 0; j < m; j++) {
        const want = r.rows.slice(j * ROW_BYTES, (j + 1) * ROW_BYTES);
        if (bitAt(r.choices, j)) for (let b = 0; b < ROW_BYTES; b++) want[b]! ^= k.delta[b]!;
        expect(q.subarray(j * ROW_BYTES, (j + 1) * ROW_BYTES)).toEqual(want);
      }
    }
  });

  it('a receiver that flips a row bit in half of the columns (inconsistent choice bit) fails the check', () => {
    const k = seeds();
    const j = 100;
    const r = kosReceiverExtend(k.s0, k.s1, sid, m, {
      corruptColumns: (cols) => {
        for (let i = 0; i < 64; i++) cols[i * colBytes + (j >> 3)]! ^= 1 << (j & 7);
      },
    });
    expect(thrown(() => kosSenderExtend(k.delta, k.sd, sid, m, r.msg)).code).toBe(ErrorCode.BadProof);
  });

  it('flipping a bit in one column fails exactly when the matching bit of Δ is 1 (KOS15 selective failure), and a pass changes nothing', () => {
    const k = seeds();
    for (const i of [0, 1, 2, 3, 77, 127]) {
      // The cheater changes column i before deriving the check (Fiat–Shamir), as an adversary would.
      const r = kosReceiverExtend(k.s0, k.s1, sid, m, { corruptColumns: (cols) => void (cols[i * colBytes + 3]! ^= 0x10) });
      if (bitAt(k.delta, i)) {
        expect(thrown(() => kosSenderExtend(k.delta, k.sd, sid, m, r.msg)).code).toBe(ErrorCode.BadProof);
      } else {
        const q = kosSenderExtend(k.delta, k.sd, sid, m, r.msg);
        const j = 3 * 8 + 4;
        const want = r.rows.slice(j * ROW_BYTES, (j + 1) * ROW_BYTES);
        if (bitAt(r.choices, j)) for (let b = 0; b < ROW_BYTES; b++) want[b]! ^= k.delta[b]!;
        expect(q.subarray(j * ROW_BYTES, (j + 1) * ROW_BYTES)).toEqual(want);
      }
    }
  });

  it('a column changed in transit (after the check was derived) always fails the check', () => {
    const k = seeds();
    const r = kosReceiverExtend(k.s0, k.s1, sid, m);
    r.msg[5 * colBytes + 3]! ^= 0x10;
    expect(thrown(() => kosSenderExtend(k.delta, k.sd, sid, m, r.msg)).code).toBe(ErrorCode.BadProof);
  });

  it('tampered check values (x̃ or t̃) fail the check', () => {
    const k = seeds();
    for (const off of [0, 16]) {
      const r = kosReceiverExtend(k.s0, k.s1, sid, m);
      r.msg[OTE_KAPPA * colBytes + off + 5]! ^= 4;
      if (off === 0 && k.delta.every((b) => b === 0)) continue; // x̃·Δ = 0 for Δ = 0 (probability 2^-128)
      expect(thrown(() => kosSenderExtend(k.delta, k.sd, sid, m, r.msg)).code).toBe(ErrorCode.BadProof);
    }
  });

  it('a different session id on the sender side fails the check', () => {
    const k = seeds();
    const r = kosReceiverExtend(k.s0, k.s1, sid, m);
    expect(thrown(() => kosSenderExtend(k.delta, k.sd, new Uint8Array([9]), m, r.msg)).code).toBe(ErrorCode.BadProof);
  });

  it('a truncated or overlong message is BadMessage', () => {
    const k = seeds();
    const r = kosReceiverExtend(k.s0, k.s1, sid, m);
    expect(r.msg.length).toBe(kosMessageLength(m));
    expect(thrown(() => kosSenderExtend(k.delta, k.sd, sid, m, r.msg.subarray(0, r.msg.length - 1))).code).toBe(ErrorCode.BadMessage);
    const longer = new Uint8Array(r.msg.length + 1);
    longer.set(r.msg);
    expect(thrown(() => kosSenderExtend(k.delta, k.sd, sid, m, longer)).code).toBe(ErrorCode.BadMessage);
  });
});

describe('TCCR hash (GKWY20 §7.4) used for the KOS15 output hashing and the column PRG', () => {
  /** The definition, one block at a time: H(x, i) = π(π(x) ⊕ i) ⊕ π(x), π = AES-128 under `key`. */
  function reference(key: Uint8Array, x: Uint8Array, index: number, k: number): Uint8Array {
    const pi = (b: Uint8Array) => {
      const c = createCipheriv('aes-128-ecb', key, null);
      c.setAutoPadding(false);
      return new Uint8Array(c.update(b));
    };
    const px = pi(x);
    const tweak = new Uint8Array(16);
    new DataView(tweak.buffer).setUint32(0, index);
    tweak[4] = k;
    const out = pi(px.map((v, n) => v ^ tweak[n]!));
    return out.map((v, n) => v ^ px[n]!);
  }

  it('the batched hash equals the definition block by block, with the (index, block) tweak', () => {
    const key = tccrKey('test', new Uint8Array([1, 2, 3]));
    const xs = new Uint8Array(randomBytes(7 * 16));
    const index = (n: number) => (0x01020304 * (n + 1)) >>> 0;
    const blocks = 3;
    const out = tccrHash(key, xs, blocks, index);
    expect(out.length).toBe(7 * blocks * 16);
    for (let n = 0; n < 7; n++) {
      for (let k = 0; k < blocks; k++) {
        expect(out.subarray((n * blocks + k) * 16, (n * blocks + k + 1) * 16)).toEqual(reference(key, xs.subarray(n * 16, (n + 1) * 16), index(n), k));
      }
    }
  });

  it('the key is bound to the purpose and the session id; inputs and tweaks change every block', () => {
    const sidA = new Uint8Array([1]);
    expect(tccrKey('a', sidA)).not.toEqual(tccrKey('b', sidA));
    expect(tccrKey('a', sidA)).not.toEqual(tccrKey('a', new Uint8Array([2])));
    const key = tccrKey('a', sidA);
    const x = new Uint8Array(randomBytes(16));
    const twice = new Uint8Array(32);
    twice.set(x);
    twice.set(x, 16);
    // The same input under two indexes, and its blocks: all different; the same call twice: equal.
    const out = tccrHash(key, twice, 2, (n) => n);
    const blocks = [0, 1, 2, 3].map((b) => Buffer.from(out.subarray(b * 16, (b + 1) * 16)).toString('hex'));
    expect(new Set(blocks).size).toBe(4);
    expect(tccrHash(key, twice, 2, (n) => n)).toEqual(out);
    expect(tccrHash(tccrKey('a', new Uint8Array([2])), twice, 2, (n) => n)).not.toEqual(out);
  });

  it('bad arguments are BadInput', () => {
    const key = tccrKey('a', new Uint8Array([1]));
    expect(thrown(() => tccrHash(key.subarray(0, 15), new Uint8Array(16), 1, (n) => n)).code).toBe(ErrorCode.BadInput);
    expect(thrown(() => tccrHash(key, new Uint8Array(17), 1, (n) => n)).code).toBe(ErrorCode.BadInput);
    expect(thrown(() => tccrHash(key, new Uint8Array(16), 0, (n) => n)).code).toBe(ErrorCode.BadInput);
  });
});
