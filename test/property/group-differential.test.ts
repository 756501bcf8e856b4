/**
 * Differential test of the group backends (core/backends/) against the noble groups they replace
 * (issue 10, item 1): every backend installed here (sodium-native for edwards25519, the native
 * libsecp256k1 binding and tiny-secp256k1's WASM build for secp256k1, node:crypto's ECDH for P-256) must give the same bytes as
 * noble for the same operation, and refuse the same encodings with the same error.
 *
 * Per backend and run: 1,000 random scalars (from a fresh seed, printed on failure) through mulBase,
 * mulPoint, add / sub / neg, msm, the encoding round trip and eqPoints; the reference values come from
 * noble, computed once per curve (mulPoint and msm are checked against noble's mulBase of the
 * combined scalar: the same element, and much cheaper than noble's own ladder). Then edge scalars and the identity, and 1,000 random
 * encodings plus crafted invalid ones: non-canonical, off the curve, the identity, every small-order
 * point of edwards25519 and torsion points P + T, x >= p and wrong prefixes on secp256k1.
 *
 * Then signing with the backends installed (runtime/group-backend.ts selectGroupBackends in a fresh
 * module instance, so core/sign.ts and core/frost.ts run on them): the RFC 9591 Appendix E vectors
 * (ed25519, secp256k1) are reproduced value for value; random keys and messages give the same
 * signature bytes as noble for the same nonce randomness; and ed25519 signatures verify in node:crypto
 * (OpenSSL), bip340 ones in libsecp256k1 (tiny-secp256k1 verifySchnorr).
 */
import { createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE, numberToBytesBE, numberToBytesLE } from '@noble/curves/utils.js';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { fromHex, toHex } from '../../core/bytes.js';
import * as nodeCrypto from 'node:crypto';
import { libsecp256k1Group, type Libsecp256k1Binding } from '../../core/backends/libsecp256k1.js';
import { nodeP256Group } from '../../core/backends/p256-node.js';
import { sodiumEd25519Group, type SodiumEd25519Binding } from '../../core/backends/sodium-ed25519.js';
import { tinySecp256k1Group, type TinySecp256k1 } from '../../core/backends/tiny-secp256k1.js';
import { TesseraError } from '../../core/errors.js';
import type { Group, Point } from '../../core/group.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import * as nobleSign from '../../core/sign.js';
import { NOBLE_GROUPS, getSigningSuite, type SigningSuiteId } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { dealerKeys } from '../helpers/run-sign.js';

const require = createRequire(import.meta.url);
const N = 1000;

interface Backend {
  readonly name: string;
  readonly group: Group;
  readonly ref: Group;
}

// Loaded directly: a backend that does not load here is a failure, not a skip.
const BACKENDS: Backend[] = [
  { name: 'sodium-native', group: sodiumEd25519Group(require('sodium-native') as SodiumEd25519Binding, NOBLE_GROUPS.edwards25519), ref: NOBLE_GROUPS.edwards25519 },
  {
    name: 'libsecp256k1 (native)',
    group: libsecp256k1Group(require('secp256k1/bindings') as Libsecp256k1Binding, NOBLE_GROUPS.secp256k1),
    ref: NOBLE_GROUPS.secp256k1,
  },
  { name: 'tiny-secp256k1 (WASM)', group: tinySecp256k1Group(require('tiny-secp256k1') as TinySecp256k1, NOBLE_GROUPS.secp256k1), ref: NOBLE_GROUPS.secp256k1 },
  // Its points are noble's own p256.Point objects (core/backends/p256-node.ts), by design.
  { name: 'node:crypto (OpenSSL)', group: nodeP256Group(nodeCrypto, NOBLE_GROUPS['P-256']), ref: NOBLE_GROUPS['P-256'] },
];

/** Scalar i of a seeded stream: SHA-512(seed || i) mod order (reproducible from the printed seed). */
function scalarStream(seed: Uint8Array, ref: Group): (i: number) => bigint {
  return (i) => ref.reduce(bytesToNumberBE(sha512(Uint8Array.from([...seed, ...numberToBytesBE(BigInt(i), 4)]))));
}

/** What a decoding gives: the re-encoded bytes, or the error's code and message. */
function decodeOutcome(g: Group, b: Uint8Array): string {
  try {
    return 'ok:' + toHex(g.pointToBytes(g.pointFromBytes(b, 'element')));
  } catch (e) {
    if (!(e instanceof TesseraError)) return `not a TesseraError: ${String(e)}`;
    return `${e.code}: ${e.message}`;
  }
}

const hexOf = (g: Group, p: Point): string => (g.isIdentity(p) ? 'identity' : toHex(g.pointToBytes(p)));

interface Reference {
  readonly seed: Uint8Array;
  /** N + 1 random scalars. */
  readonly a: bigint[];
  /** Hex of a[i]·G. */
  readonly A: string[];
  /** Hex of (a[i]·a[i+1])·G. */
  readonly AB: string[];
  /** Hex of A[i] + A[i+1], A[i] - A[i+1], -A[i]. */
  readonly sum: string[];
  readonly diff: string[];
  readonly negA: string[];
}

/** Noble's values for one curve, computed once and shared by every backend of that curve. */
const references = new Map<string, Reference>();
function reference(ref: Group): Reference {
  const cached = references.get(ref.name);
  if (cached) return cached;
  const seed = randomBytes(16);
  const s = scalarStream(seed, ref);
  const a = Array.from({ length: N + 1 }, (_, i) => s(i));
  const P = a.map((k) => ref.mulBase(k));
  const r: Reference = {
    seed,
    a,
    A: P.map((p) => hexOf(ref, p)),
    AB: a.slice(0, N).map((k, i) => hexOf(ref, ref.mulBase(ref.mul(k, a[i + 1]!)))),
    sum: P.slice(0, N).map((p, i) => hexOf(ref, ref.addPoints(p, P[i + 1]!))),
    diff: P.slice(0, N).map((p, i) => hexOf(ref, ref.subPoints(p, P[i + 1]!))),
    negA: P.slice(0, N).map((p) => hexOf(ref, ref.negPoint(p))),
  };
  references.set(ref.name, r);
  return r;
}

for (const { name, group: g, ref } of BACKENDS) {
  describe(`${name} agrees with noble (${ref.name})`, () => {
    it('reports its backend and the reference group parameters', () => {
      expect(g.backend).toBe(name);
      expect(g.name).toBe(ref.name);
      expect(g.order).toBe(ref.order);
      expect(g.pointLength).toBe(ref.pointLength);
      expect(g.scalarLength).toBe(ref.scalarLength);
      expect(toHex(g.pointToBytes(g.base))).toBe(toHex(ref.pointToBytes(ref.base)));
      expect(g.isIdentity(g.identity)).toBe(true);
    });

    it(`${N} random scalars: mulBase, mulPoint, add, sub, neg, msm, encoding round trip`, () => {
      const { seed, a, A, AB, sum, diff, negA } = reference(ref);
      const ctx = `seed ${toHex(seed)}`;
      // tiny-secp256k1's mulPoint is noble's own ladder (core/backends/tiny-secp256k1.ts): a tenth suffices.
      const mulPointEvery = name.startsWith('tiny') ? 10 : 1;
      let gA = g.mulBase(a[0]!);
      for (let i = 0; i < N; i++) {
        const at = `${ctx} i=${i}`;
        // b = a[i + 1], so B is the next round's A.
        const b = a[i + 1]!;
        const gB = g.mulBase(b);
        expect(toHex(g.pointToBytes(gA)), `${at} mulBase`).toBe(A[i]);
        expect(toHex(g.pointToBytes(gB)), `${at} mulBase`).toBe(A[i + 1]);
        const dB = g.pointFromBytes(fromHex(A[i + 1]!, 'B'), 'B');
        expect(toHex(g.pointToBytes(dB)), `${at} round trip`).toBe(A[i + 1]);
        expect(g.eqPoints(dB, gB), `${at} eqPoints`).toBe(true);
        expect(g.eqPoints(gA, gB), `${at} eqPoints`).toBe(A[i] === A[i + 1]);
        // mulPoint(b·G, a) = (a·b)·G
        if (i % mulPointEvery === 0) expect(toHex(g.pointToBytes(g.mulPoint(dB, a[i]!))), `${at} mulPoint`).toBe(AB[i]);
        expect(hexOf(g, g.addPoints(gA, gB)), `${at} add`).toBe(sum[i]);
        expect(hexOf(g, g.subPoints(gA, gB)), `${at} sub`).toBe(diff[i]);
        expect(hexOf(g, g.negPoint(gA)), `${at} neg`).toBe(negA[i]);
        // msm([A, B, G], [b, a, c]) with c = -a·b: (a·b + a·b - a·b)·G = (a·b)·G; every 10th round also
        // carries the identity and a zero scalar.
        const points = [gA, gB, g.base];
        const scalars = [b, a[i]!, ref.neg(ref.mul(a[i]!, b))];
        if (i % 10 === 0) {
          points.push(g.identity, gA);
          scalars.push(a[i]!, 0n);
        }
        expect(hexOf(g, g.msm(points, scalars)), `${at} msm`).toBe(AB[i]);
        gA = gB;
      }
    });

    it('edge scalars and the identity', () => {
      const P = g.mulBase(ref.randomScalar());
      const Pb = g.pointToBytes(P);
      const rP = ref.pointFromBytes(Pb, 'P');
      for (const k of [0n, 1n, 2n, ref.order - 1n, ref.order, ref.order + 1n, 2n * ref.order - 1n]) {
        expect(hexOf(g, g.mulBase(k)), `mulBase(${k})`).toBe(hexOf(ref, ref.mulBase(k)));
        expect(hexOf(g, g.mulPoint(P, k)), `mulPoint(${k})`).toBe(hexOf(ref, ref.mulPoint(rP, k)));
        expect(hexOf(g, g.msm([P, g.base], [k, k])), `msm(${k})`).toBe(hexOf(ref, ref.msm([rP, ref.base], [k, k])));
      }
      const O = g.identity;
      expect(g.isIdentity(g.mulBase(0n))).toBe(true);
      expect(g.isIdentity(g.subPoints(P, P))).toBe(true);
      expect(g.isIdentity(g.addPoints(P, g.negPoint(P)))).toBe(true);
      expect(g.isIdentity(g.mulPoint(O, 5n))).toBe(true);
      expect(g.isIdentity(g.negPoint(O))).toBe(true);
      expect(g.isIdentity(g.msm([], []))).toBe(true);
      expect(g.isIdentity(g.msm([P, P], [1n, ref.order - 1n]))).toBe(true);
      expect(toHex(g.pointToBytes(g.addPoints(P, O)))).toBe(toHex(Pb));
      expect(toHex(g.pointToBytes(g.addPoints(O, P)))).toBe(toHex(Pb));
      expect(toHex(g.pointToBytes(g.subPoints(P, O)))).toBe(toHex(Pb));
      expect(toHex(g.pointToBytes(g.subPoints(O, P)))).toBe(toHex(ref.pointToBytes(ref.negPoint(rP))));
      expect(toHex(g.pointToBytes(g.addPoints(P, P)))).toBe(toHex(ref.pointToBytes(ref.addPoints(rP, rP))));
      expect(g.eqPoints(O, g.identity)).toBe(true);
      expect(g.eqPoints(O, P)).toBe(false);
      expect(g.eqPoints(P, O)).toBe(false);
      // The identity has no encoding: the same error as noble's.
      const err = (f: () => unknown) => {
        try {
          f();
        } catch (e) {
          return `${(e as TesseraError).code}: ${(e as Error).message}`;
        }
        return 'no error';
      };
      expect(err(() => g.pointToBytes(O))).toBe(err(() => ref.pointToBytes(ref.identity)));
      expect(err(() => g.msm([P], []))).toBe(err(() => ref.msm([rP], [])));
      // Bytes handed out are copies: changing them changes no point.
      const out = g.pointToBytes(P);
      out.fill(0);
      expect(toHex(g.pointToBytes(P))).toBe(toHex(Pb));
      const input = Uint8Array.from(Pb);
      const Q = g.pointFromBytes(input, 'Q');
      input.fill(0);
      expect(toHex(g.pointToBytes(Q))).toBe(toHex(Pb));
    });

    it(`${N} random encodings and crafted invalid ones: the same acceptance, bytes and error`, () => {
      const cases: Uint8Array[] = [];
      for (let i = 0; i < N; i++) {
        const b = randomBytes(ref.pointLength);
        if (ref.name !== 'edwards25519' && i % 4 !== 0) b[0] = 2 + (i % 2); // mostly well-formed prefixes
        cases.push(new Uint8Array(b));
      }
      cases.push(...(ref.name === 'edwards25519' ? edwardsCrafted() : secpCrafted()));
      for (const b of cases) {
        expect(decodeOutcome(g, b), `encoding ${toHex(b)}`).toBe(decodeOutcome(ref, b));
      }
      // Wrong lengths and types.
      for (const bad of [new Uint8Array(0), new Uint8Array(ref.pointLength - 1), new Uint8Array(ref.pointLength + 1), 'ab' as never, null as never]) {
        expect(decodeOutcome(g, bad)).toBe(decodeOutcome(ref, bad));
      }
    });

    if (ref.name === 'P-256') {
      it('shares noble\'s point representation: noble\'s points are its points, and the other way round', () => {
        const other = ref.mulBase(3n);
        expect(toHex(g.pointToBytes(g.addPoints(g.base, other)))).toBe(toHex(ref.pointToBytes(ref.mulBase(4n))));
        expect(toHex(ref.pointToBytes(ref.addPoints(g.mulPoint(other, 5n), g.base)))).toBe(toHex(ref.pointToBytes(ref.mulBase(16n))));
        expect(() => g.mulPoint(NOBLE_GROUPS.secp256k1.base, 2n)).toThrow(TesseraError);
      });
    } else {
      it('refuses points made by another backend', () => {
        const other = ref.mulBase(3n);
        expect(() => g.addPoints(g.base, other)).toThrow(TesseraError);
        expect(() => g.pointToBytes(other)).toThrow(TesseraError);
      });
    }
  });
}

/** edwards25519: every small-order point, torsion points P + T, non-canonical y, x = 0 with the sign bit. */
function edwardsCrafted(): Uint8Array[] {
  const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
  // The eight points of order dividing 8 (canonical encodings).
  const small = [
    '0100000000000000000000000000000000000000000000000000000000000000',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000080',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  ].map(hex);
  for (const t of small) {
    const T = ed25519.Point.fromBytes(t);
    expect(T.multiplyUnsafe(8n).is0()).toBe(true);
  }
  const out: Uint8Array[] = [...small];
  // Torsion points: a prime-order point plus each small-order point (not in the subgroup unless T = O).
  for (let i = 0; i < 16; i++) {
    const P = ed25519.Point.BASE.multiply(NOBLE_GROUPS.edwards25519.randomScalar());
    for (const t of small.slice(1)) out.push(P.add(ed25519.Point.fromBytes(t)).toBytes());
  }
  // Non-canonical: y + p for y in 0..18 (y >= p), with and without the sign bit.
  const p = 2n ** 255n - 19n;
  for (let y = 0n; y < 19n; y++) {
    const e = numberToBytesLE(p + y, 32);
    out.push(e, Uint8Array.from(e.map((v, k) => (k === 31 ? v | 0x80 : v))));
  }
  // x = 0 with the sign bit set (the identity and the order-2 point), and y = 2^255 - 1 (all ones).
  out.push(hex('0100000000000000000000000000000000000000000000000000000000000080'));
  out.push(hex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'));
  out.push(new Uint8Array(32).fill(0xff));
  // Valid points with the sign bit flipped are their negations: still valid, different bytes.
  for (let i = 0; i < 8; i++) {
    const e = ed25519.Point.BASE.multiply(NOBLE_GROUPS.edwards25519.randomScalar()).toBytes();
    e[31]! ^= 0x80;
    out.push(e);
  }
  return out;
}

/** secp256k1: x >= p, x = 0, wrong prefixes, uncompressed and hybrid forms cut to 33 bytes. */
function secpCrafted(): Uint8Array[] {
  const p = 2n ** 256n - 2n ** 32n - 977n;
  const out: Uint8Array[] = [];
  const withPrefix = (prefix: number, x: bigint) => Uint8Array.from([prefix, ...numberToBytesBE(x, 32)]);
  for (const x of [0n, 1n, 7n, p - 1n, p, p + 1n, p + 7n, 2n ** 256n - 1n]) {
    for (const prefix of [0x02, 0x03]) out.push(withPrefix(prefix, x));
  }
  const valid = NOBLE_GROUPS.secp256k1.pointToBytes(NOBLE_GROUPS.secp256k1.mulBase(NOBLE_GROUPS.secp256k1.randomScalar()));
  for (const prefix of [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0x80, 0xff]) {
    const b = Uint8Array.from(valid);
    b[0] = prefix;
    out.push(b);
  }
  out.push(new Uint8Array(33));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Signing with the backends installed

interface FrostVector {
  config: { MAX_PARTICIPANTS: string; MIN_PARTICIPANTS: string; name: string };
  inputs: {
    participant_list: number[];
    group_public_key: string;
    message: string;
    share_polynomial_coefficients: string[];
    group_secret_key: string;
    participant_shares: { identifier: number; participant_share: string }[];
  };
  round_one_outputs: {
    outputs: { identifier: number; hiding_nonce_randomness: string; binding_nonce_randomness: string; hiding_nonce_commitment: string; binding_nonce_commitment: string; binding_factor: string }[];
  };
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] };
  final_output: { sig: string };
}
const VECTORS = '/work/shared/vectors/rfc9591-frost';
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const tiny = require('tiny-secp256k1') as { verifySchnorr(m: Uint8Array, pk: Uint8Array, sig: Uint8Array): boolean };

type SignModule = typeof nobleSign;
type SuitesModule = typeof import('../../core/suites.js');

/** A deterministic rng: SHA-256(seed || counter), for nonce randomness shared by two runs. */
function seededRng(seed: Uint8Array): (n: number) => Uint8Array {
  let k = 0;
  return (n) => {
    expect(n).toBe(32);
    return sha256(Uint8Array.from([...seed, ...numberToBytesBE(BigInt(k++), 4)]));
  };
}

/** The two rounds and aggregation through one module instance of core/sign.ts. */
function signWithRng(sign: SignModule, suites: SuitesModule, keys: KeyShare[], message: Uint8Array, rng: (n: number) => Uint8Array): Uint8Array {
  const suite = suites.getSigningSuite(keys[0]!.publicKey.suite);
  const nonces = new Map<number, nobleSign.SigningNonces>();
  const commits = new Map<number, SignCommitMsg>();
  for (const k of keys) {
    const r = sign.signRound1(suite, k.secret, rng);
    nonces.set(k.secret.index, r.nonces);
    commits.set(k.secret.index, r.commit);
  }
  const shares = new Map<number, SignShareMsg>();
  for (const k of keys) shares.set(k.secret.index, sign.signRound2(suite, k, nonces.get(k.secret.index)!, commits, message));
  return sign.aggregateSignature(suite, keys[0]!.publicKey, commits, message, shares);
}

const SETUPS = [
  { prefer: 'native' as const, names: { edwards25519: 'sodium-native', secp256k1: 'libsecp256k1 (native)', 'P-256': 'node:crypto (OpenSSL)' }, suites: ['ed25519', 'secp256k1', 'bip340', 'p256'] as SigningSuiteId[] },
  // wasm leaves edwards25519 on noble: only the secp256k1 and P-256 suites change (node:crypto is part of Node).
  { prefer: 'wasm' as const, names: { edwards25519: 'noble', secp256k1: 'tiny-secp256k1 (WASM)', 'P-256': 'node:crypto (OpenSSL)' }, suites: ['secp256k1', 'bip340'] as SigningSuiteId[] },
];
/** Random keys and messages per suite and setup, compared with noble byte for byte. */
const SIGNATURES = 20;
/** More, verified independently only (fast on the backends). */
const VERIFIED = 200;

for (const setup of SETUPS) {
  describe(`signing with the ${setup.prefer} group backends installed`, () => {
    let suites: SuitesModule;
    let sign: SignModule;
    beforeAll(async () => {
      vi.resetModules(); // fresh core/ modules: no point made yet, so the backends can be installed
      suites = await import('../../core/suites.js');
      const runtime = await import('../../runtime/group-backend.js');
      runtime.selectGroupBackends({
        prefer: setup.prefer,
        warn: (m) => {
          throw new Error(`unexpected fallback: ${m}`);
        },
      });
      sign = await import('../../core/sign.js');
      expect(suites.groupBackendNames()).toEqual(setup.names);
    });

    for (const [file, suiteId] of [
      ['frost-ed25519-sha512.json', 'ed25519'],
      ['frost-secp256k1-sha256.json', 'secp256k1'],
      ['frost-p256-sha256.json', 'p256'],
    ] as const) {
      if (!setup.suites.includes(suiteId)) continue;
      it(`reproduces the RFC 9591 Appendix E vector ${file}`, () => {
        const v: FrostVector = JSON.parse(readFileSync(`${VECTORS}/${file}`, 'utf8'));
        const suite = suites.getSigningSuite(suiteId);
        expect(suite.group.backend).toBe(setup.names[suite.group.name as keyof typeof setup.names]);
        const g = suite.group;
        const scalar = (h: string) => g.scalarFromBytes(fromHex(h, 'scalar'), 'scalar');
        const coefficients = [scalar(v.inputs.group_secret_key), ...v.inputs.share_polynomial_coefficients.map(scalar)];
        const pkg = {
          suite: suiteId,
          threshold: Number(v.config.MIN_PARTICIPANTS),
          parties: Number(v.config.MAX_PARTICIPANTS),
          epoch: 0,
          commitments: coefficients.map((c) => g.pointToBytes(g.mulBase(c))),
          verifyingShares: v.inputs.participant_shares.map((p) => g.pointToBytes(g.mulBase(scalar(p.participant_share)))),
        };
        expect(toHex(sign.groupPublicKey(suite, pkg))).toBe(v.inputs.group_public_key);
        const message = fromHex(v.inputs.message, 'message');
        const nonces = new Map<number, nobleSign.SigningNonces>();
        const commits = new Map<number, SignCommitMsg>();
        for (const o of v.round_one_outputs.outputs) {
          const chunks = [fromHex(o.hiding_nonce_randomness, 'r'), fromHex(o.binding_nonce_randomness, 'r')];
          const share = { suite: suiteId, index: o.identifier, epoch: 0, value: fromHex(v.inputs.participant_shares[o.identifier - 1]!.participant_share, 's') };
          const r = sign.signRound1(suite, share, () => chunks.shift()!);
          expect(toHex(r.commit.hiding)).toBe(o.hiding_nonce_commitment);
          expect(toHex(r.commit.binding)).toBe(o.binding_nonce_commitment);
          nonces.set(o.identifier, r.nonces);
          commits.set(o.identifier, r.commit);
        }
        const factors = sign.bindingFactors(suite, pkg, commits, message);
        for (const o of v.round_one_outputs.outputs) expect(toHex(g.scalarToBytes(factors.get(o.identifier)!))).toBe(o.binding_factor);
        const shares = new Map<number, SignShareMsg>();
        for (const o of v.round_two_outputs.outputs) {
          const key = { publicKey: pkg, secret: { suite: suiteId, index: o.identifier, epoch: 0, value: fromHex(v.inputs.participant_shares[o.identifier - 1]!.participant_share, 's') } };
          const z = sign.signRound2(suite, key, nonces.get(o.identifier)!, commits, message);
          expect(toHex(z.share)).toBe(o.sig_share);
          shares.set(o.identifier, z);
        }
        sign.verifySignatureShares(suite, pkg, commits, message, shares);
        expect(toHex(sign.aggregateSignature(suite, pkg, commits, message, shares))).toBe(v.final_output.sig);
        expect(suite.verify(fromHex(v.final_output.sig, 'sig'), message, fromHex(v.inputs.group_public_key, 'pk'))).toBe(true);
      });
    }

    for (const suiteId of setup.suites) {
      it(`${suiteId}: ${SIGNATURES} random keys and messages sign to noble's bytes; ${VERIFIED} more verify independently`, () => {
        const seed = randomBytes(16);
        const at = (i: number) => `${suiteId} seed ${seed.toString('hex')} i=${i}`;
        let keys: KeyShare[] = [];
        for (let i = 0; i < SIGNATURES + VERIFIED; i++) {
          // A new key (dealt by noble) every 5 messages, then any 2 of 3 signers; bip340 messages are
          // 32 bytes (BIP-340 / verifySchnorr).
          if (i % 5 === 0) keys = dealerKeys(suiteId, 2, 3);
          const signers = [keys[i % 3]!, keys[(i + 1 + (i % 2)) % 3]!].sort((a, b) => a.secret.index - b.secret.index);
          const message = suiteId === 'bip340' ? new Uint8Array(randomBytes(32)) : new Uint8Array(randomBytes(i % 64));
          const rngSeed = sha256(Uint8Array.from([...seed, ...numberToBytesBE(BigInt(i), 4)]));
          const sig = signWithRng(sign, suites, signers, message, seededRng(rngSeed));
          const pk = sign.groupPublicKey(suites.getSigningSuite(suiteId), keys[0]!.publicKey);
          if (i < SIGNATURES) {
            const reference = signWithRng(nobleSign, { getSigningSuite } as SuitesModule, signers, message, seededRng(rngSeed));
            expect(toHex(sig), at(i)).toBe(toHex(reference));
          }
          if (suiteId === 'ed25519') {
            const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, pk]), format: 'der', type: 'spki' });
            expect(nodeVerify(null, message, key, sig), `${at(i)} node:crypto`).toBe(true);
          } else if (suiteId === 'bip340') {
            expect(tiny.verifySchnorr(message, pk, sig), `${at(i)} libsecp256k1 verifySchnorr`).toBe(true);
          } else {
            // FROST(secp256k1, SHA-256) and FROST(P-256, SHA-256) signatures have no other verifier: noble's group checks the ones
            // compared above; aggregation verified every one before returning it.
            if (i < SIGNATURES) expect(getSigningSuite(suiteId).verify(sig, message, pk), `${at(i)} noble verify`).toBe(true);
          }
        }
      });
    }
  });
}
