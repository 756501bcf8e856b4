/**
 * The prime-order group behind a suite, as the protocol code sees it.
 *
 * Protocol code (DKG, refresh, decapsulation, Shamir) does all of its arithmetic through this
 * interface and treats points as opaque values, so a faster backend can replace the noble one
 * without touching protocol code. Scalars are bigints in [0, order); note that bigints cannot be
 * zeroized in JavaScript, so secret scalars live until the garbage collector reclaims them.
 *
 * Decoding validates before anything else: canonical length and encoding, on the curve, not the
 * identity, in the prime-order subgroup (RFC 9591 §3.1 DeserializeElement / DeserializeScalar).
 */
import { mulAddUnsafe } from '@noble/curves/abstract/curve.js';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { equalBytes } from './bytes.js';
import { ErrorCode, TesseraError } from './errors.js';

/** An opaque group element. Only the Group that made it may look inside. */
export interface Point {
  readonly __tesseraPoint: unique symbol;
}

export interface Group {
  readonly name: string;
  /**
   * Which implementation does the curve arithmetic ('noble', 'sodium-native', 'libsecp256k1 (native)',
   * ...). Informational (logs, GET /v1/node); every backend behaves identically (core/backends/).
   */
  readonly backend: string;
  readonly order: bigint;
  readonly scalarLength: number;
  /** Length of the canonical (compressed) element encoding. */
  readonly pointLength: number;
  readonly base: Point;
  readonly identity: Point;

  /** DeserializeScalar: exact length, canonical (< order). Zero is allowed only if `allowZero`. */
  scalarFromBytes(b: Uint8Array, what: string, allowZero?: boolean): bigint;
  scalarToBytes(s: bigint): Uint8Array;
  /** A uniformly random non-zero scalar from the platform CSPRNG. */
  randomScalar(): bigint;
  add(a: bigint, b: bigint): bigint;
  sub(a: bigint, b: bigint): bigint;
  mul(a: bigint, b: bigint): bigint;
  neg(a: bigint): bigint;
  inv(a: bigint): bigint;
  /** Reduce an arbitrary non-negative integer modulo the order. */
  reduce(a: bigint): bigint;

  /** DeserializeElement: canonical encoding, on curve, not identity, prime-order subgroup. */
  pointFromBytes(b: Uint8Array, what: string): Point;
  /** SerializeElement. Throws BadPoint for the identity (it has no RFC 9591 encoding). */
  pointToBytes(p: Point): Uint8Array;
  /** s·G with a constant-time ladder (s may be secret). */
  mulBase(s: bigint): Point;
  /** s·P with a constant-time ladder (s may be secret). */
  mulPoint(p: Point, s: bigint): Point;
  /** Σ s_i·P_i, variable time: public inputs only. */
  msm(points: Point[], scalars: bigint[]): Point;
  addPoints(a: Point, b: Point): Point;
  subPoints(a: Point, b: Point): Point;
  negPoint(a: Point): Point;
  eqPoints(a: Point, b: Point): boolean;
  isIdentity(a: Point): boolean;
  /** The suite's hash-to-scalar with a domain-separation tag (RFC 9591 §6 H1..H5 style). */
  hashToScalar(dst: Uint8Array, msg: Uint8Array): bigint;
  /**
   * Optional, edwards25519 backends only: a faster check of an ed25519 signature (RFC 8032 §5.1.7,
   * cofactorless, as RFC 9591 §6.1 verifies FROST(Ed25519, SHA-512) signatures) on public values.
   * The caller must have validated `publicKey` as DeserializeElement does (canonical, in the
   * prime-order subgroup, not the identity). Given that, it accepts exactly what the Group-generic
   * check accepts: R = signature[0..32] a canonical non-identity element, S = signature[32..64] a
   * canonical scalar, and S·B == R + SHA-512(R || A || M)·A. Never throws. A backend without it
   * leaves it undefined (core/frost.ts then runs the generic check over the Group).
   */
  readonly ed25519Verify?: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;
  /**
   * Optional: n fresh bytes from the backend's CSPRNG (libsodium randombytes_buf, node:crypto
   * randomFillSync), cheaper per call than WebCrypto getRandomValues; core/frost.ts draws the nonce
   * randomness of RFC 9591 §4.1 nonce_generate from it when no rng is given. Absent: noble's randomBytes.
   */
  readonly randomBytes?: (n: number) => Uint8Array;
  /**
   * Optional, edwards25519 backends only: for `encoded`, the canonical encoding of any point P of the
   * curve (small-order component allowed), the element [8^-1 mod L]·([8]·P) of the prime-order
   * subgroup: what X25519's clamped scalars see of P (core/suites.ts HPKE_X25519.encToPoint). Throws
   * BadPoint if `encoded` is not a point of the curve, or if P has small order ([8]·P = identity).
   * Absent: core/suites.ts computes it with noble.
   */
  readonly primeOrderComponent?: (encoded: Uint8Array) => Point;
}

/** The slice of a noble point class that the adapter uses. */
export interface NoblePoint<P> {
  add(o: P): P;
  subtract(o: P): P;
  negate(): P;
  multiply(s: bigint): P;
  multiplyUnsafe(s: bigint): P;
  equals(o: P): boolean;
  is0(): boolean;
  isTorsionFree(): boolean;
  assertValidity(): void;
  toBytes(compressed?: boolean): Uint8Array;
}

export interface NoblePointClass<P extends NoblePoint<P>> {
  BASE: P;
  ZERO: P;
  fromBytes(b: Uint8Array): P;
  Fn: {
    ORDER: bigint;
    BYTES: number;
    isLE: boolean;
    create(n: bigint): bigint;
    add(a: bigint, b: bigint): bigint;
    sub(a: bigint, b: bigint): bigint;
    mul(a: bigint, b: bigint): bigint;
    neg(a: bigint): bigint;
    inv(a: bigint): bigint;
    toBytes(a: bigint): Uint8Array;
  };
}

export interface NobleGroupOptions {
  name: string;
  pointLength: number;
  /** The suite's hash-to-scalar (RFC 9591 §6.x H1 construction with the given DST). */
  hashToScalar: (dst: Uint8Array, msg: Uint8Array) => bigint;
  /** Fresh random bytes; injected so that core/ holds no global state. */
  randomBytes: (n: number) => Uint8Array;
}

/** Adapt a noble-curves point class to the Group interface. */
export function nobleGroup<P extends NoblePoint<P>>(Point: NoblePointClass<P>, opts: NobleGroupOptions): Group {
  const Fn = Point.Fn;
  const order = Fn.ORDER;
  const toP = (p: Point): P => p as unknown as P;
  const fromP = (p: P): Point => p as unknown as Point;
  const bad = (what: string, why: string) => new TesseraError(ErrorCode.BadPoint, `${what}: ${why}`);

  const group: Group = {
    name: opts.name,
    backend: 'noble',
    order,
    scalarLength: Fn.BYTES,
    pointLength: opts.pointLength,
    base: fromP(Point.BASE),
    identity: fromP(Point.ZERO),

    scalarFromBytes(b, what, allowZero = false) {
      if (!(b instanceof Uint8Array) || b.length !== Fn.BYTES) {
        throw new TesseraError(ErrorCode.BadScalar, `${what}: expected a ${Fn.BYTES}-byte scalar`);
      }
      const n = Fn.isLE ? bytesToNumberLE(b) : bytesToNumberBE(b);
      if (n >= order) throw new TesseraError(ErrorCode.BadScalar, `${what}: scalar is not canonical`);
      if (n === 0n && !allowZero) throw new TesseraError(ErrorCode.BadScalar, `${what}: scalar is zero`);
      return n;
    },
    scalarToBytes: (s) => Fn.toBytes(Fn.create(s)),
    randomScalar() {
      // 64 bytes reduced mod order: statistical distance < 2^-250 from uniform (FIPS 186-5 A.2.1).
      for (;;) {
        const buf = opts.randomBytes(64);
        const s = Fn.create(bytesToNumberBE(buf));
        buf.fill(0);
        if (s !== 0n) return s;
      }
    },
    add: (a, b) => Fn.add(a, b),
    sub: (a, b) => Fn.sub(a, b),
    mul: (a, b) => Fn.mul(a, b),
    neg: (a) => Fn.neg(a),
    inv(a) {
      if (Fn.create(a) === 0n) throw new TesseraError(ErrorCode.BadScalar, 'cannot invert zero');
      return Fn.inv(a);
    },
    reduce: (a) => Fn.create(a),

    pointFromBytes(b, what) {
      if (!(b instanceof Uint8Array) || b.length !== opts.pointLength) {
        throw bad(what, `expected a ${opts.pointLength}-byte element`);
      }
      let p: P;
      try {
        p = Point.fromBytes(b);
        p.assertValidity();
      } catch {
        throw bad(what, 'not a valid curve point');
      }
      if (p.is0()) throw bad(what, 'identity element');
      if (!p.isTorsionFree()) throw bad(what, 'not in the prime-order subgroup');
      if (!equalBytes(p.toBytes(true), b)) throw bad(what, 'non-canonical encoding');
      return fromP(p);
    },
    pointToBytes(p) {
      const q = toP(p);
      if (q.is0()) throw new TesseraError(ErrorCode.BadPoint, 'cannot serialize the identity element');
      return q.toBytes(true);
    },
    mulBase(s) {
      const n = Fn.create(s);
      return fromP(n === 0n ? Point.ZERO : Point.BASE.multiply(n));
    },
    mulPoint(p, s) {
      const n = Fn.create(s);
      return fromP(n === 0n ? Point.ZERO : toP(p).multiply(n));
    },
    msm(points, scalars) {
      if (points.length !== scalars.length) throw new TesseraError(ErrorCode.BadInput, 'msm: length mismatch');
      if (points.length === 0) return fromP(Point.ZERO);
      return fromP(
        mulAddUnsafe(Point as never, points.map(toP) as never, scalars.map((s) => Fn.create(s))) as unknown as P,
      );
    },
    addPoints: (a, b) => fromP(toP(a).add(toP(b))),
    subPoints: (a, b) => fromP(toP(a).subtract(toP(b))),
    negPoint: (a) => fromP(toP(a).negate()),
    eqPoints: (a, b) => toP(a).equals(toP(b)),
    isIdentity: (a) => toP(a).is0(),
    hashToScalar: (dst, msg) => opts.hashToScalar(dst, msg),
  };
  return Object.freeze(group);
}

/** RFC 9591 §6.1 / §6.3 style: H(contextString || tag || msg) interpreted little-endian mod L. */
export function wideHashToScalar(hash: (m: Uint8Array) => Uint8Array, order: bigint, littleEndian: boolean) {
  return (dst: Uint8Array, msg: Uint8Array): bigint => {
    const h = hash(concatBytes(dst, msg));
    return (littleEndian ? bytesToNumberLE(h) : bytesToNumberBE(h)) % order;
  };
}

/** A hash in the shape noble's RFC 9380 code takes (its CHash): called on bytes, with outputLen and blockLen. */
export interface XmdHash {
  (message: Uint8Array): Uint8Array;
  readonly outputLen: number;
  readonly blockLen: number;
}

/**
 * RFC 9591 §6.4 / §6.5 hash-to-scalar: RFC 9380 §5.2 hash_to_field with count = 1, m = 1, p = the
 * group order and security level k (128), i.e. L = ceil((ceil(log2(order)) + k) / 8) bytes of §5.3.1
 * expand_message_xmd(msg, DST, L) with the hash H, read big-endian (OS2IP) and reduced mod the order.
 * Byte-identical to noble's hasher.hashToScalar (which is this with H = noble's sha256); a backend
 * passes a faster SHA-256 (runtime/group-backend.ts: node:crypto). The expansion is expandMessageXmd:
 * the same steps as noble's expand_message_xmd, with the fixed parts laid out once per DST.
 */
export function xmdHashToScalar(order: bigint, H: XmdHash, k = 128): (dst: Uint8Array, msg: Uint8Array) => bigint {
  const L = Math.ceil((order.toString(2).length + k) / 8);
  const expand = expandMessageXmd(H, L);
  return (dst, msg) => {
    const bytes = expand(msg, dst);
    try {
      return bytesToNumberBE(bytes) % order;
    } finally {
      bytes.fill(0);
    }
  };
}

/**
 * RFC 9380 §5.3.1 expand_message_xmd(msg, DST, len_in_bytes) with the hash H, for a fixed
 * len_in_bytes. Per DST, the fixed bytes are laid out once (steps 3 - 6: DST_prime, Z_pad, l_i_b_str),
 * kept against a copy of the DST (a changed array is laid out again); a DST over 255 bytes is first
 * hashed (§5.3.3). Up to 8 DSTs are kept: a suite
 * uses three (H1, H2, H3). test/unit/group.test.ts compares it with @noble/curves'
 * expand_message_xmd and RFC 9380 Appendix K.1.
 */
const OVERSIZE_DST_PREFIX = new TextEncoder().encode('H2C-OVERSIZE-DST-');

export function expandMessageXmd(H: XmdHash, lenInBytes: number): (msg: Uint8Array, dst: Uint8Array) => Uint8Array {
  const b = H.outputLen;
  const r = H.blockLen;
  // 1. - 2. ell = ceil(len_in_bytes / b_in_bytes); ABORT if ell > 255 or len_in_bytes > 65535.
  const ell = Math.ceil(lenInBytes / b);
  if (!Number.isSafeInteger(lenInBytes) || lenInBytes < 1 || lenInBytes > 65535 || ell > 255) throw new TesseraError(ErrorCode.BadInput, 'expand_message_xmd: bad length');
  interface Layout {
    readonly dst: Uint8Array;
    /** l_i_b_str || I2OSP(0, 1) || DST_prime: what follows Z_pad || msg in msg_prime (step 6). */
    readonly tail: Uint8Array;
    /** b_0 xor b_(i-1) (b bytes) || I2OSP(i, 1) || DST_prime: the input of b_i (steps 8 - 9), reused. */
    readonly block: Uint8Array;
  }
  const layouts: Layout[] = [];
  const layout = (dst: Uint8Array): Layout => {
    for (const l of layouts) if (l.dst.length === dst.length && equalBytes(l.dst, dst)) return l;
    if (!(dst instanceof Uint8Array)) throw new TesseraError(ErrorCode.BadInput, 'expand_message_xmd: DST must be bytes');
    // §5.3.3: a DST over 255 bytes is replaced by H("H2C-OVERSIZE-DST-" || DST) (step 2's bound then holds).
    const used = dst.length > 255 ? H(concatBytes(OVERSIZE_DST_PREFIX, dst)) : dst;
    // 3. DST_prime = DST || I2OSP(len(DST), 1); 5. l_i_b_str = I2OSP(len_in_bytes, 2).
    const dstPrime = concatBytes(used, Uint8Array.of(used.length));
    const tail = concatBytes(Uint8Array.of(lenInBytes >>> 8, lenInBytes & 0xff, 0), dstPrime);
    const block = new Uint8Array(b + 1 + dstPrime.length);
    block.set(dstPrime, b + 1);
    const l = { dst: Uint8Array.from(dst), tail, block };
    if (layouts.length >= 8) layouts.shift();
    layouts.push(l);
    return l;
  };
  return (msg, dst) => {
    if (!(msg instanceof Uint8Array)) throw new TesseraError(ErrorCode.BadInput, 'expand_message_xmd: msg must be bytes');
    const { tail, block } = layout(dst);
    // 4. Z_pad = I2OSP(0, s_in_bytes); 6. msg_prime = Z_pad || msg || l_i_b_str || I2OSP(0, 1) || DST_prime.
    const msgPrime = new Uint8Array(r + msg.length + tail.length);
    msgPrime.set(msg, r);
    msgPrime.set(tail, r + msg.length);
    // 7. b_0 = H(msg_prime).
    const b0 = H(msgPrime);
    // msg may be secret (H3 hashes a nonce seed and the share): the copies made here are wiped.
    msgPrime.fill(0);
    const out = new Uint8Array(ell * b);
    // 8. b_1 = H(b_0 || I2OSP(1, 1) || DST_prime); 9. b_i = H(strxor(b_0, b_(i - 1)) || I2OSP(i, 1) || DST_prime).
    let prev: Uint8Array | undefined;
    for (let i = 1; i <= ell; i++) {
      for (let k = 0; k < b; k++) block[k] = prev === undefined ? b0[k]! : b0[k]! ^ prev[k]!;
      block[b] = i;
      prev = H(block);
      // 10. uniform_bytes = b_1 || ... || b_ell.
      out.set(prev, (i - 1) * b);
    }
    block.fill(0, 0, b);
    b0.fill(0);
    prev!.fill(0);
    // 11. substr(uniform_bytes, 0, len_in_bytes).
    return out.subarray(0, lenInBytes);
  };
}

/**
 * A group whose backend is chosen once per process. The suites (core/suites.ts) hold `slot.group`,
 * which forwards every call to the backend installed in the slot (initially the noble one).
 *
 * Points are opaque and belong to the backend that made them, so the backend can be replaced only
 * until the first point is made through `slot.group` (its base, its identity, pointFromBytes, mulBase
 * or msm): after that `install` throws BadState. A process therefore picks its backends at start-up
 * (runtime/group-backend.ts), before any protocol code runs.
 */
export interface GroupSlot {
  /** The forwarding group that protocol code holds. */
  readonly group: Group;
  /** The backend the slot forwards to now. */
  readonly backend: Group;
  /** True once a point was made through `group` (the backend is then fixed). */
  readonly sealed: boolean;
  /** Replace the backend: same curve (name, order, lengths); refused once `sealed`. */
  install(backend: Group): void;
}

export function groupSlot(initial: Group): GroupSlot {
  let target = initial;
  let sealed = false;
  // Every point is made by these (msm([], []) makes the identity) or derived from one they made, so
  // sealing here fixes the backend in time.
  const making = (): Group => {
    sealed = true;
    return target;
  };
  const group: Group = Object.freeze({
    name: initial.name,
    get backend() {
      return target.backend;
    },
    order: initial.order,
    scalarLength: initial.scalarLength,
    pointLength: initial.pointLength,
    get base() {
      return making().base;
    },
    get identity() {
      return making().identity;
    },
    scalarFromBytes: (b: Uint8Array, what: string, allowZero?: boolean) => target.scalarFromBytes(b, what, allowZero),
    scalarToBytes: (s: bigint) => target.scalarToBytes(s),
    randomScalar: () => target.randomScalar(),
    add: (a: bigint, b: bigint) => target.add(a, b),
    sub: (a: bigint, b: bigint) => target.sub(a, b),
    mul: (a: bigint, b: bigint) => target.mul(a, b),
    neg: (a: bigint) => target.neg(a),
    inv: (a: bigint) => target.inv(a),
    reduce: (a: bigint) => target.reduce(a),
    pointFromBytes: (b: Uint8Array, what: string) => making().pointFromBytes(b, what),
    pointToBytes: (p: Point) => target.pointToBytes(p),
    mulBase: (s: bigint) => making().mulBase(s),
    mulPoint: (p: Point, s: bigint) => target.mulPoint(p, s),
    msm: (points: Point[], scalars: bigint[]) => making().msm(points, scalars),
    addPoints: (a: Point, b: Point) => target.addPoints(a, b),
    subPoints: (a: Point, b: Point) => target.subPoints(a, b),
    negPoint: (a: Point) => target.negPoint(a),
    eqPoints: (a: Point, b: Point) => target.eqPoints(a, b),
    isIdentity: (a: Point) => target.isIdentity(a),
    hashToScalar: (dst: Uint8Array, msg: Uint8Array) => target.hashToScalar(dst, msg),
    // The installed backend's own (or undefined): it makes no point, so it does not seal the slot.
    get ed25519Verify() {
      return target.ed25519Verify;
    },
    get randomBytes() {
      return target.randomBytes;
    },
    // It makes a point: the first call seals the slot, like pointFromBytes.
    get primeOrderComponent() {
      const f = target.primeOrderComponent;
      return f === undefined ? undefined : (encoded: Uint8Array) => making().primeOrderComponent!(encoded);
    },
  });
  return {
    group,
    get backend() {
      return target;
    },
    get sealed() {
      return sealed;
    },
    install(backend: Group) {
      const same =
        backend.name === initial.name &&
        backend.order === initial.order &&
        backend.scalarLength === initial.scalarLength &&
        backend.pointLength === initial.pointLength;
      if (!same) throw new TesseraError(ErrorCode.BadInput, `group backend ${backend.backend} is not a backend of ${initial.name}`);
      if (backend === target) return;
      if (sealed) {
        throw new TesseraError(ErrorCode.BadState, `${initial.name}: points were already made with the ${target.backend} backend; choose the backend at start-up`);
      }
      target = backend;
    },
  };
}

/** The scalar arithmetic of a Group (bigints mod the order: the same in every backend of one group). */
export type GroupScalars = Pick<Group, 'scalarFromBytes' | 'scalarToBytes' | 'randomScalar' | 'add' | 'sub' | 'mul' | 'neg' | 'inv' | 'reduce'>;

/** A backend's scalar arithmetic, delegated to the reference group of the same curve (core/backends/). */
export function referenceScalars(reference: Group): GroupScalars {
  return {
    scalarFromBytes: (b, what, allowZero) => reference.scalarFromBytes(b, what, allowZero),
    scalarToBytes: (s) => reference.scalarToBytes(s),
    randomScalar: () => reference.randomScalar(),
    add: (a, b) => reference.add(a, b),
    sub: (a, b) => reference.sub(a, b),
    mul: (a, b) => reference.mul(a, b),
    neg: (a) => reference.neg(a),
    inv: (a) => reference.inv(a),
    reduce: (a) => reference.reduce(a),
  };
}
