/**
 * P-256 with its scalar multiplications on node:crypto's ECDH (OpenSSL), everything else on noble.
 * A pure adapter: runtime/group-backend.ts passes node:crypto in (issue 12: threshold ECDSA on P-256
 * within 20 ms of compute per signature; noble's constant-time ladder costs ~3.5 ms per k·P here).
 *
 * Points are noble's own p256.Point objects, as in the noble group (core/group.ts nobleGroup), so
 * every other operation, every encoding, core/suites.ts HPKE_P256 (which builds noble points from
 * `enc` directly) and any point made by the noble group are interchangeable with this backend's.
 * Scalars, decoding, addition, hash-to-scalar: the reference (noble) group's, unchanged.
 *
 * - mulBase(k): ECDH.setPrivateKey(k) makes OpenSSL compute the public key k·G (EC_POINT_mul with the
 *   generator's precomputed table: ecp_nistz256 where OpenSSL has it for the CPU, as on x86-64 and
 *   arm64 with Node's bundled OpenSSL, otherwise its generic Montgomery ladder; both constant time in
 *   k), read back uncompressed (SEC 1 v2 §2.3.3) and parsed (on-curve check) by noble.
 * - mulPoint(P, k): ECDH.computeSecret(P) is the ECDH primitive of SEC 1 v2 §3.3.1 (RFC 5903 §7: the
 *   shared secret is the x-coordinate only), i.e. x(k·P), computed by OpenSSL's EC_POINT_mul (constant
 *   time in k, as above). The y of k·P is one of the two roots of the curve equation at that x; with
 *   Y = (x, even y) (OpenSSL decompresses 02 || x, SEC 1 v2 §2.3.4), k·P is Y or -Y, and
 *       k·(P + G) = k·P + k·G,
 *   so k·P = Y exactly when x(Y + k·G) = x(k·(P + G)), the second value again from computeSecret.
 *   The comparison is unambiguous: x(Y + k·G) = x(-Y + k·G) would need 2Y = 0 or 2·k·G = 0, impossible
 *   in a group of odd prime order with k != 0 and Y != 0. Degenerate inputs are answered before:
 *   k = 0 or P = identity give the identity, P = G gives k·G, P = -G gives -(k·G) (then P + G and
 *   Y + k·G are never the identity, since k·P = ±k·G only when P = ±G). If OpenSSL's answers ever
 *   fail to single out one candidate, or its x is no curve point's (a fault), noble's ladder computes
 *   the product instead.
 * - msm (public inputs, variable time allowed): each term k_i·P_i as above, summed with noble; at
 *   ~0.3 ms per term this is cheaper than noble's Pippenger (~0.5 ms per term up to 30 terms here)
 *   for the sizes the protocols use; above MSM_NOBLE_FROM terms, noble's msm.
 *
 * Timing. OpenSSL's two products are constant time in k. The y recovery does the same work whatever
 * the secret: both candidates Y + k·G and -Y + k·G are always formed and both compared (no early
 * exit); what remains data-dependent is noble's bigint field arithmetic on points derived from k
 * (JavaScript bigints are not constant time, as everywhere in the noble group: core/group.ts) and the
 * final choice between Y and -Y, which selects the output point itself. The only branches on inputs
 * other than those are on the public point P (identity, ±G) and on k = 0.
 *
 * Secrets: the 32-byte scalar, the x-coordinates and the encodings derived from them are zeroized
 * after use. OpenSSL keeps the last scalar inside the one ECDH object (a BIGNUM, freed with
 * BN_clear_free) until the next operation replaces it; like the bigint scalars themselves (which
 * JavaScript cannot zeroize), it lives in this process's memory only.
 */
import type * as NodeCrypto from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { ErrorCode, TesseraError } from '../errors.js';
import type { Group, Point } from '../group.js';

/** The slice of node:crypto this adapter uses. */
export type NodeCryptoEcdh = Pick<typeof NodeCrypto, 'createECDH' | 'ECDH'>;

/** OpenSSL's name of P-256 (secp256r1, NIST FIPS 186-5 §D.1.2.3). */
const OPENSSL_CURVE = 'prime256v1';

/** msm with more terms than this uses noble's (Pippenger scales better than one ECDH pair per term). */
export const MSM_NOBLE_FROM = 64;

export const NODE_P256_BACKEND = 'node:crypto (OpenSSL)';

type WPoint = InstanceType<typeof p256.Point>;

/** `reference` is the noble P-256 group (core/suites.ts NOBLE_GROUPS['P-256']), whose points are p256.Point. */
export function nodeP256Group(nodeCrypto: NodeCryptoEcdh, reference: Group): Group {
  if (reference.name !== 'P-256' || !(reference.base instanceof p256.Point)) {
    throw new TesseraError(ErrorCode.BadInput, `${NODE_P256_BACKEND} backs the noble P-256 group only`);
  }
  if (typeof nodeCrypto?.createECDH !== 'function' || typeof nodeCrypto.ECDH?.convertKey !== 'function') {
    throw new TesseraError(ErrorCode.BadInput, 'node:crypto lacks createECDH or ECDH.convertKey');
  }
  const Curve = p256.Point;
  const Fp = Curve.Fp;
  const BASE = Curve.BASE;
  const NEG_BASE = BASE.negate();
  const ZERO = Curve.ZERO;
  const ecdh = nodeCrypto.createECDH(OPENSSL_CURVE);

  const toW = (p: Point): WPoint => {
    if (!(p instanceof Curve)) throw new TesseraError(ErrorCode.BadPoint, 'not a P-256 point');
    return p as WPoint;
  };
  const fromW = (p: WPoint): Point => p as unknown as Point;

  /** Load k (in [1, n)) into the ECDH object and return k·G (OpenSSL computes it on setPrivateKey). */
  const loadScalar = (n: bigint): WPoint => {
    const k = numberToBytesBE(n, 32);
    let kG: Buffer | undefined;
    try {
      ecdh.setPrivateKey(k);
      kG = ecdh.getPublicKey();
      return Curve.fromBytes(kG);
    } finally {
      k.fill(0);
      kG?.fill(0);
    }
  };

  /** x(k·Q) as a field element, Q not the identity, for the scalar loaded last (SEC 1 v2 §3.3.1). */
  const ecdhX = (Q: WPoint): Uint8Array => {
    const x = ecdh.computeSecret(Q.toBytes(false));
    if (x.length !== 32) {
      x.fill(0);
      throw new TesseraError(ErrorCode.BadState, 'node:crypto ECDH returned a shared secret of the wrong length');
    }
    return x;
  };

  /** k·P for k in [1, n) and P not in {identity, G, -G}. */
  const mulGeneric = (P: WPoint, n: bigint): WPoint => {
    const kG = loadScalar(n);
    const xKP = ecdhX(P);
    const xKPG = ecdhX(P.add(BASE));
    const compressed = new Uint8Array(33);
    compressed[0] = 0x02;
    compressed.set(xKP, 1);
    let even: Buffer | undefined;
    try {
      let Y: WPoint;
      try {
        // Y = (x, even y): OpenSSL's point decompression (SEC 1 v2 §2.3.4), parsed (on-curve) by noble.
        even = nodeCrypto.ECDH.convertKey(compressed, OPENSSL_CURVE, undefined, undefined, 'uncompressed') as Buffer;
        Y = Curve.fromBytes(even);
      } catch {
        // x(k·P) is not the x of a curve point: a fault (see below).
        return P.multiply(n);
      }
      const negY = Y.negate();
      // Both candidates, both compared, always: x(C) = x3 <=> C.X = x3·C.Z (projective, C != identity).
      const x3 = bytesToNumberBE(xKPG);
      const plus = Y.add(kG);
      const minus = negY.add(kG);
      const plusMatches = !Fp.is0(plus.Z) && Fp.eql(plus.X, Fp.mul(x3, plus.Z));
      const minusMatches = !Fp.is0(minus.Z) && Fp.eql(minus.X, Fp.mul(x3, minus.Z));
      if (plusMatches !== minusMatches) return plusMatches ? Y : negY;
      // Unreachable for a correct OpenSSL (see the module comment): noble's ladder instead.
      return P.multiply(n);
    } finally {
      xKP.fill(0);
      xKPG.fill(0);
      compressed.fill(0);
      even?.fill(0);
    }
  };

  /** k·P with k reduced mod n. */
  const mul = (P: WPoint, s: bigint): WPoint => {
    const n = reference.reduce(s);
    if (n === 0n || P.is0()) return ZERO;
    if (P.equals(BASE)) return loadScalar(n);
    if (P.equals(NEG_BASE)) return loadScalar(n).negate();
    return mulGeneric(P, n);
  };

  const group: Group = Object.freeze({
    ...reference,
    backend: NODE_P256_BACKEND,
    mulBase: (s: bigint) => fromW(mul(BASE, s)),
    mulPoint: (p: Point, s: bigint) => fromW(mul(toW(p), s)),
    msm(points: Point[], scalars: bigint[]): Point {
      if (points.length !== scalars.length) throw new TesseraError(ErrorCode.BadInput, 'msm: length mismatch');
      if (points.length > MSM_NOBLE_FROM) return reference.msm(points, scalars);
      let sum = ZERO;
      for (let i = 0; i < points.length; i++) sum = sum.add(mul(toW(points[i]!), scalars[i]!));
      return fromW(sum);
    },
  });
  knownAnswerCheck(group, reference);
  return group;
}

/**
 * Known-answer check against noble at load: mulBase on edge and random scalars (0, 1, 2, n - 1, n + 3
 * reduced, random), mulPoint on those with a random point R = a·G (expected: noble's (a·k)·G) and the
 * identity, and on G, -G and -R, and msm. Throws on any difference; runtime/group-backend.ts then keeps
 * noble, with a warning.
 */
function knownAnswerCheck(g: Group, ref: Group): void {
  const n = ref.order;
  const scalars = [0n, 1n, 2n, n - 1n, n + 3n, ref.randomScalar()];
  const a = ref.randomScalar();
  const R = ref.mulBase(a);
  const same = (x: Point, y: Point, what: string) => {
    if (!ref.eqPoints(x, y)) throw new Error(`known-answer check failed: ${what}`);
  };
  for (const k of scalars) {
    same(g.mulBase(k), ref.mulBase(k), 'mulBase');
    same(g.mulPoint(R, k), ref.mulBase(ref.mul(a, k)), 'mulPoint');
    same(g.mulPoint(ref.identity, k), ref.identity, 'mulPoint of the identity');
  }
  const k = ref.randomScalar();
  same(g.mulPoint(ref.base, k), ref.mulBase(k), 'mulPoint of G');
  same(g.mulPoint(ref.negPoint(ref.base), k), ref.negPoint(ref.mulBase(k)), 'mulPoint of -G');
  same(g.mulPoint(ref.negPoint(R), k), ref.negPoint(ref.mulBase(ref.mul(a, k))), 'mulPoint of -R');
  // msm([G, R, identity, -R], [c, k, 2, n - 1]) = (c + k·a + 0 - (n - 1)·a)·G = (c + (k + 1)·a)·G.
  const c = scalars[5]!;
  same(g.msm([ref.base, R, ref.identity, ref.negPoint(R)], [c, k, 2n, n - 1n]), ref.mulBase(ref.add(c, ref.mul(ref.add(k, 1n), a))), 'msm');
}
