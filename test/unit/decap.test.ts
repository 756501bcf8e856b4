/**
 * Threshold decapsulation: interoperability with @hpke/core senders, equality with X25519, cheater
 * attribution, and typed rejection of bad inputs.
 */
import { describe, expect, it } from 'vitest';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { decapCombine, decapPartial, decodeEnc } from '../../core/decap.js';
import { dleqProve, dleqVerify } from '../../core/dleq.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { AeadId, KdfId, createContext, extractAndExpand, type HpkeSuiteParams } from '../../core/hpke.js';
import type { DecapPartialMsg } from '../../core/messages.js';
import { HPKE_P256, HPKE_X25519, type KemSuite } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { dealerKeys } from '../helpers/run-sign.js';
import { runDkg, runRefresh } from '../helpers/run-dkg.js';
import { thrown } from '../helpers/thrown.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const utf8 = (s: string) => new TextEncoder().encode(s);
const sid = (fill: number) => new Uint8Array(32).fill(fill);

/** Keys from an all-honest in-memory DKG (test/helpers/run-dkg.ts): nobody ever held skR. */
function generatedKeys(suite: KemSuite, threshold: number, parties: number): KeyShare[] {
  return runDkg(suite.id, threshold, parties);
}

function recipientPublicKey(suite: KemSuite, keys: KeyShare[]): Uint8Array {
  return suite.publicKeyBytes(suite.group.pointFromBytes(keys[0]!.publicKey.commitments[0]!, 'group key'));
}

function partialsFor(suite: KemSuite, keys: KeyShare[], players: number[], enc: Uint8Array, sessionId: Uint8Array) {
  return new Map<number, DecapPartialMsg>(players.map((i) => [i, decapPartial(suite, keys[i - 1]!, enc, sessionId)]));
}

const HPKE_JS = {
  'hpke-x25519': () => new DhkemX25519HkdfSha256(),
  'hpke-p256': () => new DhkemP256HkdfSha256(),
} as const;

describe('threshold decapsulation opens messages sealed by @hpke/core', () => {
  for (const suite of [HPKE_X25519, HPKE_P256]) {
    it(`${suite.id}: 3-of-5 key, any 3 (and all 5) parties open, exporter agrees`, async () => {
      const keys = generatedKeys(suite, 3, 5);
      const pkg = keys[0]!.publicKey;
      const hpkeSuite = new CipherSuite({ kem: HPKE_JS[suite.id as keyof typeof HPKE_JS](), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
      const pkR = await hpkeSuite.kem.deserializePublicKey(recipientPublicKey(suite, keys));
      const info = utf8('tessera decap test');
      const sender = await hpkeSuite.createSenderContext({ recipientPublicKey: pkR, info });
      const enc = new Uint8Array(sender.enc);
      expect(enc.length).toBe(suite.encLength);
      const ct0 = new Uint8Array(await sender.seal(utf8('first message'), utf8('aad-0')));
      const ct1 = new Uint8Array(await sender.seal(utf8('second message')));
      const exported = new Uint8Array(await sender.export(utf8('exporter ctx'), 32));

      const params: HpkeSuiteParams = { kemId: suite.kemId, kdfId: KdfId.HkdfSha256, aeadId: AeadId.Aes128Gcm };
      const sessionId = sid(1);
      const all = partialsFor(suite, keys, [1, 2, 3, 4, 5], enc, sessionId);
      const secrets = new Set<string>();
      for (const players of [[1, 2, 3], [2, 4, 5], [1, 3, 5], [1, 2, 3, 4, 5]]) {
        const ss = decapCombine(suite, pkg, enc, new Map(players.map((i) => [i, all.get(i)!])), sessionId);
        secrets.add(toHex(ss));
        const ctx = createContext(params, ss, info);
        expect(new TextDecoder().decode(ctx.open(utf8('aad-0'), ct0))).toBe('first message');
        expect(new TextDecoder().decode(ctx.open(new Uint8Array(0), ct1))).toBe('second message');
        expect(toHex(ctx.export(utf8('exporter ctx'), 32))).toBe(toHex(exported));
        ctx.destroy();
      }
      expect(secrets.size).toBe(1);

      // The other direction: what we seal with the threshold secret, @hpke/core's single-shot open can't
      // check (it needs skR), but the single-shot seal to the same key opens with a fresh decapsulation.
      const oneShot = await hpkeSuite.seal({ recipientPublicKey: pkR, info }, utf8('single shot'), utf8('aad'));
      const enc2 = new Uint8Array(oneShot.enc);
      const ss2 = decapCombine(suite, pkg, enc2, partialsFor(suite, keys, [5, 1, 4], enc2, sid(2)), sid(2));
      expect(new TextDecoder().decode(createContext(params, ss2, info).open(utf8('aad'), new Uint8Array(oneShot.ct)))).toBe('single shot');
    });
  }
});

describe('hpke-x25519 equals X25519(skR, enc)', () => {
  const skR = x25519.utils.randomSecretKey();
  const pkR = x25519.getPublicKey(skR);
  const keys = dealerKeys(HPKE_X25519.id, 2, 3, { secret: HPKE_X25519.privateKeyToScalar(skR) });
  /** RFC 9180 §4.1 Decap computed by a single holder of skR with noble's X25519. */
  const expected = (enc: Uint8Array) =>
    toHex(extractAndExpand(sha256, 0x0020, x25519.getSharedSecret(skR, enc), new Uint8Array([...enc, ...pkR]), 32));
  const threshold = (enc: Uint8Array, players = [1, 3]) =>
    toHex(decapCombine(HPKE_X25519, keys[0]!.publicKey, enc, partialsFor(HPKE_X25519, keys, players, enc, sid(3)), sid(3)));

  it('the shared key is X25519(skR, 9)', () => {
    expect(toHex(recipientPublicKey(HPKE_X25519, keys))).toBe(toHex(pkR));
  });

  it('random honest enc', () => {
    for (let k = 0; k < 3; k++) {
      const enc = x25519.getPublicKey(x25519.utils.randomSecretKey());
      expect(threshold(enc, k === 2 ? [1, 2, 3] : [2, 3])).toBe(expected(enc));
    }
  });

  it('enc with the unused top bit set (RFC 7748 §5 masks it; kem_context keeps the raw bytes)', () => {
    const enc = x25519.getPublicKey(x25519.utils.randomSecretKey());
    enc[31]! |= 0x80;
    expect(threshold(enc)).toBe(expected(enc));
  });

  it('enc with a small-order component: clamping removes it, as X25519 does', () => {
    // An order-8 point of edwards25519 (the standard small-order list).
    const T = ed25519.Point.fromBytes(hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'));
    expect(T.multiplyUnsafe(8n).is0()).toBe(true);
    expect(T.multiplyUnsafe(4n).is0()).toBe(false);
    const honest = ed25519.Point.BASE.multiply(HPKE_X25519.group.randomScalar());
    const enc = ed25519.utils.toMontgomery(honest.add(T).toBytes());
    expect(threshold(enc)).toBe(expected(enc));
  });

  it('enc decoded once (decodeEnc, as the node does) gives the same partials and secret as the bytes', () => {
    for (const enc of [x25519.getPublicKey(x25519.utils.randomSecretKey()), Uint8Array.from([...pkR.subarray(0, 31), pkR[31]! | 0x80])]) {
      const decoded = decodeEnc(HPKE_X25519, enc);
      const input = enc.slice();
      enc.fill(0); // the decoded object holds its own copy
      const partials = new Map([1, 2].map((i) => [i, decapPartial(HPKE_X25519, keys[i - 1]!, decoded, sid(4))] as const));
      // DLEQ nonces are random, so compare what they prove: each partial verifies in a combine over the raw bytes.
      expect(toHex(decapCombine(HPKE_X25519, keys[0]!.publicKey, input, partials, sid(4)))).toBe(expected(input));
      expect(toHex(decapCombine(HPKE_X25519, keys[0]!.publicKey, decoded, partials, sid(4)))).toBe(expected(input));
      expect(toHex(decoded.bytes())).toBe(toHex(input));
    }
  });

  it('decodeEnc rejects what encToPoint rejects, and a decoded enc is not accepted for another suite', () => {
    const small = ed25519.utils.toMontgomery(hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'));
    expect(thrown(() => decodeEnc(HPKE_X25519, small)).code).toBe(ErrorCode.BadPoint);
    expect(thrown(() => decodeEnc(HPKE_X25519, new Uint8Array(31))).code).toBe(ErrorCode.BadPoint);
    const decoded = decodeEnc(HPKE_X25519, x25519.getPublicKey(x25519.utils.randomSecretKey()));
    const pKeys = dealerKeys(HPKE_P256.id, 2, 3);
    expect(thrown(() => decapPartial(HPKE_P256, pKeys[0]!, decoded, sid(5))).code).toBe(ErrorCode.UnknownSuite);
  });
});

describe('cheaters are named, honest parties never', () => {
  const suite = HPKE_X25519;
  const g = suite.group;
  const keys = generatedKeys(suite, 3, 5);
  const pkg = keys[0]!.publicKey;
  const enc = x25519.getPublicKey(x25519.utils.randomSecretKey());
  const sessionId = sid(7);
  const honest = partialsFor(suite, keys, [1, 2, 3, 4, 5], enc, sessionId);
  const expectedSecret = toHex(decapCombine(suite, pkg, enc, honest, sessionId));

  const withBad = (bad: Record<number, DecapPartialMsg>) => {
    const m = new Map(honest);
    for (const [i, msg] of Object.entries(bad)) m.set(Number(i), msg);
    return m;
  };
  const tamperedResponse = (msg: DecapPartialMsg): DecapPartialMsg => {
    const s = g.scalarFromBytes(msg.proofResponse, 's', true);
    return { ...msg, proofResponse: g.scalarToBytes(g.add(s, 1n)) };
  };
  /** A party that uses a wrong share: D' = s'·E with an honest-looking proof for s' (not its Y_i). */
  const wrongShare = (index: number): DecapPartialMsg => {
    const s = g.randomScalar();
    const E = suite.encToPoint(enc);
    const D = g.mulPoint(E, s);
    const Y = g.pointFromBytes(pkg.verifyingShares[index - 1]!, 'Y');
    const proof = dleqProve(suite, s, Y, E, D, { sessionId, index });
    return { partial: g.pointToBytes(D), proofChallenge: g.scalarToBytes(proof.challenge), proofResponse: g.scalarToBytes(proof.response) };
  };

  it('one bad proof and one wrong partial among five: BadProof names exactly [2, 4]', () => {
    const e = thrown(() => decapCombine(suite, pkg, enc, withBad({ 2: tamperedResponse(honest.get(2)!), 4: wrongShare(4) }), sessionId));
    expect(e.code).toBe(ErrorCode.BadProof);
    expect(e.culprits).toEqual([2, 4]);
    // The caller retries without the culprits: 1, 3, 5 are still >= t and give the same secret.
    const retry = new Map([1, 3, 5].map((i) => [i, honest.get(i)!]));
    expect(toHex(decapCombine(suite, pkg, enc, retry, sessionId))).toBe(expectedSecret);
  });

  it('one cheater among exactly t: named; the remaining t - 1 cannot decapsulate', () => {
    const three = new Map([1, 2, 3].map((i) => [i, honest.get(i)!]));
    three.set(3, { ...honest.get(3)!, partial: honest.get(1)!.partial });
    const e = thrown(() => decapCombine(suite, pkg, enc, three, sessionId));
    expect([e.code, e.culprits]).toEqual([ErrorCode.BadProof, [3]]);
    three.delete(3);
    expect(thrown(() => decapCombine(suite, pkg, enc, three, sessionId)).code).toBe(ErrorCode.BadParameters);
  });

  it('partials replayed from another session or moved to another party are rejected', () => {
    const other = partialsFor(suite, keys, [2], enc, sid(8)).get(2)!;
    expect(thrown(() => decapCombine(suite, pkg, enc, withBad({ 2: other }), sessionId)).culprits).toEqual([2]);
    const swapped = withBad({ 1: honest.get(5)!, 5: honest.get(1)! });
    expect(thrown(() => decapCombine(suite, pkg, enc, swapped, sessionId)).culprits).toEqual([1, 5]);
    // A partial for another enc.
    const enc2 = x25519.getPublicKey(x25519.utils.randomSecretKey());
    const forEnc2 = partialsFor(suite, keys, [4], enc2, sessionId).get(4)!;
    expect(thrown(() => decapCombine(suite, pkg, enc, withBad({ 4: forEnc2 }), sessionId)).culprits).toEqual([4]);
  });

  it('malformed partials are attributed to their sender', () => {
    const h = honest.get(3)!;
    const cases: DecapPartialMsg[] = [
      { ...h, partial: h.partial.subarray(1) },
      { ...h, partial: g.pointToBytes(g.base).fill(0xff) },
      { ...h, proofChallenge: new Uint8Array(32).fill(0xff) },
      { ...h, proofResponse: new Uint8Array(31) },
      { partial: h.partial } as unknown as DecapPartialMsg,
    ];
    for (const bad of cases) {
      const e = thrown(() => decapCombine(suite, pkg, enc, withBad({ 3: bad }), sessionId));
      expect([e.code, e.culprits]).toEqual([ErrorCode.BadProof, [3]]);
    }
  });

  it('after a refresh (epoch + 1) the same enc gives the same secret; stale-epoch partials are named', () => {
    const fresh = runRefresh(keys);
    const freshPkg = fresh[0]!.publicKey;
    expect(freshPkg.epoch).toBe(pkg.epoch + 1);
    const sid2 = sid(10);
    const freshPartials = partialsFor(suite, fresh, [2, 4, 5], enc, sid2);
    expect(toHex(decapCombine(suite, freshPkg, enc, freshPartials, sid2))).toBe(expectedSecret);
    // Party 4 answers with its old-epoch share: its partial is a correct DH share of the old polynomial
    // but does not verify against the new verifying share, so it is named.
    freshPartials.set(4, partialsFor(suite, keys, [4], enc, sid2).get(4)!);
    const e = thrown(() => decapCombine(suite, freshPkg, enc, freshPartials, sid2));
    expect([e.code, e.culprits]).toEqual([ErrorCode.BadProof, [4]]);
    // An old share with the new package is refused locally.
    const mixedKey: KeyShare = { publicKey: freshPkg, secret: keys[0]!.secret };
    expect(thrown(() => decapPartial(suite, mixedKey, enc, sid2)).code).toBe(ErrorCode.EpochMismatch);
  });

  it('DLEQ: verifies honestly, fails for another statement or binding', () => {
    const s = g.randomScalar();
    const Y = g.mulBase(s);
    const E = suite.encToPoint(enc);
    const D = g.mulPoint(E, s);
    const b = { sessionId, index: 2 };
    const proof = dleqProve(suite, s, Y, E, D, b);
    expect(dleqVerify(suite, Y, E, D, proof, b)).toBe(true);
    expect(dleqVerify(suite, Y, E, D, proof, { sessionId, index: 3 })).toBe(false);
    expect(dleqVerify(suite, Y, E, D, proof, { sessionId: sid(9), index: 2 })).toBe(false);
    expect(dleqVerify(suite, Y, D, E, proof, b)).toBe(false);
    expect(dleqVerify(suite, Y, E, g.addPoints(D, g.base), proof, b)).toBe(false);
    expect(dleqVerify(suite, Y, E, D, { challenge: proof.challenge, response: g.order }, b)).toBe(false);
  });
});

describe('bad inputs are typed errors', () => {
  const P = 2n ** 255n - 19n;
  const u = (n: bigint) => {
    const b = new Uint8Array(32);
    for (let k = 0, v = n; k < 32; k++, v >>= 8n) b[k] = Number(v & 0xffn);
    return b;
  };
  const pow = (b: bigint, e: bigint) => {
    let r = 1n;
    for (b %= P; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
    return r;
  };
  /** The first u >= 2 whose curve25519 right-hand side u^3 + A u^2 + u is a non-square: a twist point. */
  const twistU = (() => {
    for (let x = 2n; ; x++) if (pow((x * x * x + 486662n * x * x + x) % P, (P - 1n) / 2n) === P - 1n) return u(x);
  })();
  // libsodium's curve25519 small-order list: 0, 1, the two order-8 u's, p - 1, p, p + 1.
  const smallOrder = [
    u(0n),
    u(1n),
    hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'),
    hex('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'),
    u(P - 1n),
    u(P),
    u(P + 1n),
  ];

  const x = generatedKeys(HPKE_X25519, 2, 3);
  const p = generatedKeys(HPKE_P256, 2, 3);
  const encX = x25519.getPublicKey(x25519.utils.randomSecretKey());
  const encP = p256.getPublicKey(p256.utils.randomSecretKey(), false);

  const expectBadPoint = (suite: KemSuite, keys: KeyShare[], enc: Uint8Array) => {
    expect(thrown(() => decapPartial(suite, keys[0]!, enc, sid(4))).code).toBe(ErrorCode.BadPoint);
    const partials = partialsFor(suite, keys, [1, 2], suite === HPKE_X25519 ? encX : encP, sid(4));
    expect(thrown(() => decapCombine(suite, keys[0]!.publicKey, enc, partials, sid(4))).code).toBe(ErrorCode.BadPoint);
  };

  it('X25519: wrong length, twist point, small-order points', () => {
    for (const enc of [new Uint8Array(0), encX.subarray(1), new Uint8Array([...encX, 0])]) expectBadPoint(HPKE_X25519, x, enc);
    // Independent check that twistU is not on curve25519: its Edwards y does not decode.
    expectBadPoint(HPKE_X25519, x, twistU);
    const skR = x25519.utils.randomSecretKey();
    for (const enc of smallOrder) {
      // noble's X25519 gives the all-zero DH for these (and refuses), so no honest sender sends them.
      expect(() => x25519.getSharedSecret(skR, enc)).toThrow();
      expectBadPoint(HPKE_X25519, x, enc);
    }
  });

  it('P-256: wrong length, compressed, identity, off-curve', () => {
    const compressed = p256.getPublicKey(p256.utils.randomSecretKey(), true);
    const offCurve = Uint8Array.from(encP);
    offCurve[64]! ^= 1;
    const identity65 = new Uint8Array(65);
    identity65[0] = 0x04;
    for (const enc of [new Uint8Array(0), Uint8Array.of(0), encP.subarray(1), compressed, identity65, new Uint8Array(65), offCurve]) {
      expectBadPoint(HPKE_P256, p, enc);
    }
  });

  it('counts, indexes, session ids, suites and epochs', () => {
    const pkg = x[0]!.publicKey;
    const two = partialsFor(HPKE_X25519, x, [1, 2], encX, sid(5));
    const code = (fn: () => unknown) => thrown(fn).code;
    expect(code(() => decapCombine(HPKE_X25519, pkg, encX, new Map([[1, two.get(1)!]]), sid(5)))).toBe(ErrorCode.BadParameters);
    expect(code(() => decapCombine(HPKE_X25519, pkg, encX, new Map([...two, [4, two.get(1)!]]), sid(5)))).toBe(ErrorCode.UnexpectedParty);
    expect(code(() => decapCombine(HPKE_X25519, pkg, encX, new Map([...two, [0, two.get(1)!]]), sid(5)))).toBe(ErrorCode.UnexpectedParty);
    expect(code(() => decapCombine(HPKE_X25519, pkg, encX, two, new Uint8Array(15)))).toBe(ErrorCode.BadInput);
    expect(code(() => decapCombine(HPKE_X25519, pkg, encX, two, new Uint8Array(65)))).toBe(ErrorCode.BadInput);
    expect(code(() => decapPartial(HPKE_X25519, x[0]!, encX, new Uint8Array(8)))).toBe(ErrorCode.BadInput);
    expect(code(() => decapCombine(HPKE_P256, pkg, encX, two, sid(5)))).toBe(ErrorCode.UnknownSuite);
    expect(code(() => decapPartial(HPKE_P256, x[0]!, encP, sid(5)))).toBe(ErrorCode.UnknownSuite);
    const stale: KeyShare = { publicKey: { ...pkg, epoch: 1 }, secret: x[0]!.secret };
    expect(code(() => decapPartial(HPKE_X25519, stale, encX, sid(5)))).toBe(ErrorCode.EpochMismatch);
    const swappedShare: KeyShare = { publicKey: pkg, secret: { ...x[1]!.secret, index: 1 } };
    expect(code(() => decapPartial(HPKE_X25519, swappedShare, encX, sid(5)))).toBe(ErrorCode.BadShare);
    // A partial made with another key's share fails against this package and names its sender.
    const otherKey = dealerKeys(HPKE_X25519.id, 2, 3, { secret: 12345n });
    const mixed = new Map([[1, two.get(1)!], [2, partialsFor(HPKE_X25519, otherKey, [2], encX, sid(5)).get(2)!]]);
    expect(thrown(() => decapCombine(HPKE_X25519, pkg, encX, mixed, sid(5))).culprits).toEqual([2]);
  });

  it('error messages carry no key material', () => {
    const two = partialsFor(HPKE_X25519, x, [1, 2], encX, sid(6));
    const bad = new Map(two);
    bad.set(2, { ...two.get(2)!, partial: two.get(1)!.partial });
    const e = thrown(() => decapCombine(HPKE_X25519, x[0]!.publicKey, encX, bad, sid(6)));
    for (const secretish of [x[0]!.secret.value, x[1]!.secret.value, two.get(1)!.partial]) {
      expect(e.message).not.toContain(toHex(secretish));
    }
    expect(e.message).toMatch(/part(y|ies) 2/);
  });
});
