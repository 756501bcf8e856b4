/**
 * The group backends' fast paths (issue 10, compute per signature) accept and compute exactly what the
 * Group-generic code does:
 *   - Group.ed25519Verify (sodium-native: crypto_sign_verify_detached) in core/frost.ts verifySignature
 *     and aggregate, against the generic RFC 8032 §5.1.7 / RFC 9591 check over the noble group, on
 *     valid signatures and on every kind of invalid one (wrong message or key, S >= L, non-canonical
 *     or small-order R, small-order or non-canonical key);
 *   - hashToScalar with an injected hash (core/group.ts xmdHashToScalar with node:crypto's SHA-256 on
 *   - Group.primeOrderComponent (sodium-native: three crypto_core_ed25519_add doublings and a noclamp
 *     multiplication by 8^-1 mod L), used by HPKE_X25519.encToPoint, against noble's
 *     clearCofactor().multiplyUnsafe(8^-1), on points with every small-order component, both signs
 *     of x, small-order points and encodings off the curve;
 *     the secp256k1 backends, libsodium's SHA-512 on sodium-native) against noble's.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256, p256_hasher } from '@noble/curves/nist.js';
import { secp256k1, secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { sodiumEd25519Group, type SodiumEd25519Binding } from '../../core/backends/sodium-ed25519.js';
import { verifySignature } from '../../core/frost.js';
import { expandMessageXmd, groupSlot, xmdHashToScalar, type Group, type XmdHash } from '../../core/group.js';
import { toHex } from '../../core/bytes.js';
import { expand_message_xmd } from '@noble/curves/abstract/hash-to-curve.js';
import { NOBLE_GROUPS, getSigningSuite, signingSuiteOn, type SigningSuite } from '../../core/suites.js';
import { chooseGroupBackends } from '../../runtime/group-backend.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const realRequire = createRequire(join(ROOT, 'runtime', 'group-backend.ts'));
const sodium = () => sodiumEd25519Group(realRequire('sodium-native') as SodiumEd25519Binding, NOBLE_GROUPS.edwards25519);

/** The ed25519 suite with its arithmetic on `group`. */
const onGroup = (group: Group): SigningSuite => signingSuiteOn(getSigningSuite('ed25519'), group);

const L = ed25519.Point.Fn.ORDER;
const P = 2n ** 255n - 19n;

describe('Group.ed25519Verify (sodium-native) accepts exactly what the generic check accepts', () => {
  const fast = onGroup(sodium());
  const generic = onGroup(NOBLE_GROUPS.edwards25519);

  it('the sodium backend has it, noble does not, and a slot forwards the installed one', () => {
    expect(typeof fast.group.ed25519Verify).toBe('function');
    expect(NOBLE_GROUPS.edwards25519.ed25519Verify).toBeUndefined();
    const slot = groupSlot(NOBLE_GROUPS.edwards25519);
    expect(slot.group.ed25519Verify).toBeUndefined();
    const backend = sodium();
    slot.install(backend);
    expect(slot.group.ed25519Verify).toBe(backend.ed25519Verify);
    expect(slot.sealed).toBe(false);
  });

  it('on valid and invalid signatures', () => {
    const cases: [string, Uint8Array, Uint8Array, Uint8Array][] = [];
    for (let k = 0; k < 40; k++) {
      const sk = randomBytes(32);
      const pk = ed25519.getPublicKey(sk);
      const msg = randomBytes(k);
      const sig = ed25519.sign(msg, sk);
      cases.push(['valid', sig, msg, pk]);
      cases.push(['other message', sig, Uint8Array.of(...msg, 1), pk]);
      cases.push(['other key', sig, msg, ed25519.getPublicKey(randomBytes(32))]);
      // S + L: the same point equation, but S is not canonical.
      const s = bytesToNumberLE(sig.subarray(32));
      if (s + L < 2n ** 256n) cases.push(['S + L', Uint8Array.of(...sig.subarray(0, 32), ...numberToBytesLE(s + L, 32)), msg, pk]);
      const flipped = Uint8Array.from(sig);
      flipped[k % 32]! ^= 1;
      cases.push(['R changed', flipped, msg, pk]);
      const zeroS = Uint8Array.from(sig);
      zeroS.fill(0, 32);
      cases.push(['S = 0', zeroS, msg, pk]);
    }
    // R the identity (both signs), R of order 2 (y = p - 1), R non-canonical (y = p + 2, p + 18), R = all ones.
    const enc = (y: bigint, sign = false) => {
      const b = numberToBytesLE(y, 32);
      if (sign) b[31]! |= 0x80;
      return b;
    };
    const sk = randomBytes(32);
    const pk = ed25519.getPublicKey(sk);
    const msg = randomBytes(16);
    const sig = ed25519.sign(msg, sk);
    for (const [what, R] of [
      ['R identity', enc(1n)],
      ['R identity, sign bit', enc(1n, true)],
      ['R order 2', enc(P - 1n)],
      ['R y = p + 2', enc(P + 2n)],
      ['R y = p + 18', enc(P + 18n)],
      ['R all ones', new Uint8Array(32).fill(0xff)],
    ] as const) {
      cases.push([what, Uint8Array.of(...R, ...sig.subarray(32)), msg, pk]);
    }
    // Keys: identity, small order, non-canonical, not on the curve, wrong length.
    for (const [what, key] of [
      ['key identity', enc(1n)],
      ['key order 2', enc(P - 1n)],
      ['key non-canonical', enc(P + 3n)],
      ['key all ones', new Uint8Array(32).fill(0xff)],
      ['key 31 bytes', pk.subarray(1)],
    ] as const) {
      cases.push([what, sig, msg, key]);
    }
    // A key with a small-order component (A + T, T of order 8): libsodium alone would not refuse it.
    const T = ed25519.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
    cases.push(['key with torsion', sig, msg, ed25519.Point.fromBytes(pk).add(T).toBytes()]);
    cases.push(['signature 63 bytes', sig.subarray(1), msg, pk]);

    let valid = 0;
    for (const [what, s, m, k] of cases) {
      const want = verifySignature(generic, s, m, k);
      expect({ what, got: verifySignature(fast, s, m, Uint8Array.from(k)) }).toEqual({ what, got: want });
      if (want) valid++;
    }
    expect(valid).toBe(40);
  });
});

describe('Group.randomBytes', () => {
  it('every native and WASM backend draws n fresh bytes; noble has none (frost.ts then uses noble randomBytes)', () => {
    const native = chooseGroupBackends({ prefer: 'native', warn: () => undefined });
    const wasm = chooseGroupBackends({ prefer: 'wasm', warn: () => undefined });
    for (const g of [native.groups.edwards25519, native.groups.secp256k1, wasm.groups.secp256k1]) {
      const draw = g.randomBytes!;
      for (const n of [0, 1, 32, 64]) {
        const a = draw(n);
        expect(a).toBeInstanceOf(Uint8Array);
        expect(a.length).toBe(n);
      }
      expect(Buffer.from(draw(32)).equals(Buffer.from(draw(32)))).toBe(false);
    }
    expect(NOBLE_GROUPS.edwards25519.randomBytes).toBeUndefined();
    expect(NOBLE_GROUPS.secp256k1.randomBytes).toBeUndefined();
  });
});

describe('hashToScalar with an injected hash is byte-identical to noble', () => {
  const nodeSha256 = (() => {
    const { createHash } = realRequire('node:crypto') as typeof import('node:crypto');
    const h = (m: Uint8Array) => new Uint8Array(createHash('sha256').update(m).digest());
    return Object.assign(h, { outputLen: 32, blockLen: 64 }) satisfies XmdHash;
  })();
  const inputs = () => {
    const out: [Uint8Array, Uint8Array][] = [];
    for (const n of [0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 120, 200, 1000]) out.push([randomBytes(1 + (n % 40)), randomBytes(n)]);
    // An oversize DST (> 255 bytes, RFC 9380 §5.3.3).
    out.push([randomBytes(300), randomBytes(10)]);
    return out;
  };

  it('xmdHashToScalar (RFC 9380 hash_to_field, expand_message_xmd) for secp256k1 and P-256', () => {
    const k1 = xmdHashToScalar(secp256k1.Point.Fn.ORDER, nodeSha256);
    const r1 = xmdHashToScalar(p256.Point.Fn.ORDER, Object.assign((m: Uint8Array) => sha256(m), { outputLen: 32, blockLen: 64 }));
    for (const [dst, msg] of inputs()) {
      expect(k1(dst, msg)).toBe(secp256k1_hasher.hashToScalar(msg, { DST: dst }));
      expect(r1(dst, msg)).toBe(p256_hasher.hashToScalar(msg, { DST: dst }));
    }
  });

  it('expandMessageXmd (RFC 9380 §5.3.1) equals @noble/curves expand_message_xmd on 1,200 random inputs, DSTs reused, changed in place and evicted', () => {
    const lengths = [1, 31, 32, 33, 48, 64, 65, 96, 255, 256, 8160];
    const expanders = new Map(lengths.map((l) => [l, expandMessageXmd(nodeSha256, l)]));
    const dsts = Array.from({ length: 12 }, (_, k) => randomBytes(k === 11 ? 300 : 1 + k * 20));
    for (let k = 0; k < 1200; k++) {
      const len = lengths[k % lengths.length]!;
      const dst = dsts[k % dsts.length]!;
      if (k % 97 === 0) dst[0] = (dst[0]! + 1) & 0xff; // the same array, changed: laid out again
      const msg = randomBytes(k % 150);
      expect(toHex(expanders.get(len)!(msg, dst))).toBe(toHex(expand_message_xmd(msg, dst, len, sha256)));
    }
    expect(() => expandMessageXmd(nodeSha256, 8161)).toThrow(/bad length/);
    expect(() => expandMessageXmd(nodeSha256, 0)).toThrow(/bad length/);
  });

  it('every backend that loads here: hashToScalar equals the noble group', () => {
    const native = chooseGroupBackends({ prefer: 'native', warn: () => undefined });
    const wasm = chooseGroupBackends({ prefer: 'wasm', warn: () => undefined });
    const groups = [native.groups.edwards25519, native.groups.secp256k1, wasm.groups.secp256k1, native.groups['P-256']];
    expect(groups.map((g) => g.backend)).toEqual(['sodium-native', 'libsecp256k1 (native)', 'tiny-secp256k1 (WASM)', 'node:crypto (OpenSSL)']);
    for (const g of groups) {
      const ref = NOBLE_GROUPS[g.name as 'edwards25519' | 'secp256k1' | 'P-256'];
      for (const [dst, msg] of inputs()) expect(g.hashToScalar(dst, msg)).toBe(ref.hashToScalar(dst, msg));
    }
  });
});

describe('Group.primeOrderComponent (sodium-native) computes what noble computes', () => {
  const backend = sodium();
  const INV8 = ed25519.Point.Fn.inv(8n);
  // The 8 points of small order: multiples of one point of order 8 (noble's torsion subgroup).
  const order8 = ed25519.Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const torsion = Array.from({ length: 8 }, (_, k) => (k === 0 ? ed25519.Point.ZERO : order8.multiplyUnsafe(BigInt(k))));
  const reference = (encoded: Uint8Array): Uint8Array | 'throws' => {
    try {
      const prime = ed25519.Point.fromBytes(encoded).clearCofactor().multiplyUnsafe(INV8);
      return prime.is0() ? 'throws' : prime.toBytes();
    } catch {
      return 'throws';
    }
  };
  const fast = (encoded: Uint8Array): Uint8Array | 'throws' => {
    try {
      return backend.pointToBytes(backend.primeOrderComponent!(encoded));
    } catch {
      return 'throws';
    }
  };

  it('the sodium backend has it, noble does not, and a slot forwards it', () => {
    expect(typeof backend.primeOrderComponent).toBe('function');
    expect(NOBLE_GROUPS.edwards25519.primeOrderComponent).toBeUndefined();
    const slot = groupSlot(NOBLE_GROUPS.edwards25519);
    expect(slot.group.primeOrderComponent).toBeUndefined();
    slot.install(sodium());
    expect(typeof slot.group.primeOrderComponent).toBe('function');
  });

  it('on prime-order points plus each small-order point, both signs of x', () => {
    expect(order8.multiplyUnsafe(8n).is0()).toBe(true);
    expect(order8.multiplyUnsafe(4n).is0()).toBe(false);
    for (let k = 0; k < 24; k++) {
      const P0 = ed25519.Point.BASE.multiply(bytesToNumberLE(randomBytes(32)) % (L - 1n) + 1n);
      for (const T of torsion) {
        const Q = P0.add(T);
        for (const q of [Q, Q.negate()]) {
          const encoded = q.toBytes();
          const want = reference(encoded);
          expect(want).not.toBe('throws');
          expect(fast(encoded)).toEqual(want);
        }
      }
    }
  });

  it('refuses small-order points and encodings off the curve or not canonical, as noble does', () => {
    for (const T of torsion) expect(fast(T.toBytes())).toBe('throws');
    let offCurve = 0;
    for (let k = 0; k < 200; k++) {
      const y = bytesToNumberLE(randomBytes(32)) % P;
      const encoded = numberToBytesLE(y, 32);
      const want = reference(encoded);
      if (want === 'throws') offCurve++;
      expect(fast(encoded)).toEqual(want);
    }
    expect(offCurve).toBeGreaterThan(0); // about half of all y are not on the curve
    expect(fast(numberToBytesLE(P + 1n, 32))).toBe('throws'); // y >= p
    expect(fast(new Uint8Array(31))).toBe('throws');
  });
});
