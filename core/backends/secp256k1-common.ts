/**
 * The secp256k1 `Group` over a libsecp256k1 build (the native `secp256k1` binding, or tiny-secp256k1's
 * WASM build): the shared part of core/backends/libsecp256k1.ts and core/backends/tiny-secp256k1.ts.
 * It behaves exactly as the noble group does (core/group.ts nobleGroup: same results, encodings and
 * errors).
 *
 * Points are their 65-byte uncompressed SEC1 encodings (SEC 1 v2 §2.3.3), which libsecp256k1 parses
 * without a square root; the identity, which SEC1's 33-byte compressed form cannot encode and
 * libsecp256k1 cannot represent as a public key, is a sentinel handled here. The element encoding on
 * the wire is the 33-byte compressed one (RFC 9591 §6.5 SerializeElement).
 *
 * Scalars (bigints mod n) and randomScalar are the reference (noble) group's; hashToScalar is too,
 * or the same RFC 9380 hash_to_field with a faster SHA-256 when the loader passes one (ops.sha256).
 */
import { numberToBytesBE } from '@noble/curves/utils.js';
import { equalBytes } from '../bytes.js';
import { ErrorCode, TesseraError } from '../errors.js';
import { referenceScalars, xmdHashToScalar, type Group, type Point, type XmdHash } from '../group.js';

/** What a libsecp256k1 build provides, on 65-byte uncompressed points and 32-byte big-endian scalars. */
export interface Secp256k1Ops {
  /** The backend's name (GET /v1/node). */
  readonly backend: string;
  /** Parse and validate a 33-byte compressed encoding (02/03 prefix, x < p, on the curve); null if invalid. */
  parseCompressed(b: Uint8Array): Uint8Array | null;
  /** The 33-byte compressed encoding of a point. */
  compress(u: Uint8Array): Uint8Array;
  /** k·G for k in [1, n), constant time (k may be secret). */
  mulBase(k: Uint8Array): Uint8Array;
  /** k·P for k in [1, n), constant time (k may be secret). */
  mul(u: Uint8Array, k: Uint8Array): Uint8Array;
  /** k·P for k in [1, n), variable time: public inputs only. */
  mulPublic(u: Uint8Array, k: Uint8Array): Uint8Array;
  /** The sum of one or more points; null if it is the identity. */
  sum(us: Uint8Array[]): Uint8Array | null;
  /** -P. */
  neg(u: Uint8Array): Uint8Array;
  /**
   * Optional: a faster SHA-256 than noble's (byte-identical), for hashToScalar (RFC 9591 §6.5 H1, H3
   * and H2: RFC 9380 hash_to_field with expand_message_xmd(SHA-256)). Without it, the reference's.
   */
  readonly sha256?: XmdHash;
  /** Optional: the platform CSPRNG without WebCrypto's per-call overhead (Group.randomBytes). */
  readonly randomBytes?: (n: number) => Uint8Array;
}

class SecpPoint {
  /** The 65-byte uncompressed encoding, or null for the identity. */
  constructor(readonly u: Uint8Array | null) {}
}

export function secp256k1Group(ops: Secp256k1Ops, reference: Group): Group {
  if (reference.name !== 'secp256k1') throw new TesseraError(ErrorCode.BadInput, `${ops.backend} backs secp256k1 only`);
  const IDENTITY = new SecpPoint(null);
  const baseU = ops.parseCompressed(reference.pointToBytes(reference.base));
  if (!baseU) throw new TesseraError(ErrorCode.BadInput, `${ops.backend}: cannot parse the base point`);
  const BASE = new SecpPoint(baseU);
  const bad = (what: string, why: string) => new TesseraError(ErrorCode.BadPoint, `${what}: ${why}`);
  const toP = (p: Point): SecpPoint => {
    if (!(p instanceof SecpPoint)) throw new TesseraError(ErrorCode.BadPoint, `not a point of the ${ops.backend} secp256k1 backend`);
    return p;
  };
  const fromP = (p: SecpPoint): Point => p as unknown as Point;
  const scalarBytes = (n: bigint) => numberToBytesBE(n, 32);
  const wrap = (u: Uint8Array | null) => (u === null ? IDENTITY : new SecpPoint(u));
  const isBase = (u: Uint8Array) => u === BASE.u || equalBytes(u, BASE.u!);
  const hashToScalar = ops.sha256 !== undefined ? xmdHashToScalar(reference.order, ops.sha256) : (dst: Uint8Array, msg: Uint8Array) => reference.hashToScalar(dst, msg);

  /** n·P with n reduced; `secret` picks the constant-time path. */
  const mul = (p: SecpPoint, s: bigint, secret: boolean): SecpPoint => {
    const n = reference.reduce(s);
    if (n === 0n || p.u === null) return IDENTITY;
    if (n === 1n && !secret) return p;
    const k = scalarBytes(n);
    try {
      // Multiples of the base point use libsecp256k1's ecmult_gen (constant time, precomputed table).
      return new SecpPoint(isBase(p.u) ? ops.mulBase(k) : secret ? ops.mul(p.u, k) : ops.mulPublic(p.u, k));
    } finally {
      k.fill(0);
    }
  };
  const add = (a: SecpPoint, b: SecpPoint): SecpPoint => {
    if (a.u === null) return b;
    if (b.u === null) return a;
    return wrap(ops.sum([a.u, b.u]));
  };
  const neg = (a: SecpPoint): SecpPoint => (a.u === null ? a : new SecpPoint(ops.neg(a.u)));

  const group: Group = {
    name: reference.name,
    backend: ops.backend,
    order: reference.order,
    scalarLength: reference.scalarLength,
    pointLength: 33,
    base: fromP(BASE),
    identity: fromP(IDENTITY),

    ...referenceScalars(reference),

    pointFromBytes(b, what) {
      if (!(b instanceof Uint8Array) || b.length !== 33) throw bad(what, 'expected a 33-byte element');
      // secp256k1 has cofactor 1: every curve point is in the prime-order group, and the 33-byte
      // compressed form cannot encode the identity. libsecp256k1 also parses 65-byte and hybrid
      // forms, so the prefix is checked here first.
      const u = b[0] === 0x02 || b[0] === 0x03 ? ops.parseCompressed(b) : null;
      if (u === null) throw bad(what, 'not a valid curve point');
      return fromP(new SecpPoint(u));
    },
    pointToBytes(p) {
      const q = toP(p);
      if (q.u === null) throw new TesseraError(ErrorCode.BadPoint, 'cannot serialize the identity element');
      return ops.compress(q.u);
    },
    mulBase: (s) => fromP(mul(BASE, s, true)),
    mulPoint: (p, s) => fromP(mul(toP(p), s, true)),
    msm(points, scalars) {
      if (points.length !== scalars.length) throw new TesseraError(ErrorCode.BadInput, 'msm: length mismatch');
      const terms: Uint8Array[] = [];
      for (let i = 0; i < points.length; i++) {
        const t = mul(toP(points[i]!), scalars[i]!, false);
        if (t.u !== null) terms.push(t.u);
      }
      return fromP(terms.length === 0 ? IDENTITY : wrap(ops.sum(terms)));
    },
    addPoints: (a, b) => fromP(add(toP(a), toP(b))),
    subPoints: (a, b) => fromP(add(toP(a), neg(toP(b)))),
    negPoint: (a) => fromP(neg(toP(a))),
    eqPoints(a, b) {
      const p = toP(a);
      const q = toP(b);
      if (p.u === null || q.u === null) return p.u === q.u;
      return equalBytes(p.u, q.u);
    },
    isIdentity: (a) => toP(a).u === null,
    hashToScalar,
    ...(ops.randomBytes !== undefined ? { randomBytes: ops.randomBytes } : {}),
  };
  return Object.freeze(group);
}
