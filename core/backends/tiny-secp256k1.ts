/**
 * secp256k1 on tiny-secp256k1: libsecp256k1 compiled to WASM, the fallback where the native
 * `secp256k1` binding does not load. A pure adapter: runtime/group-backend.ts loads the module and
 * passes it in.
 *
 * - mulBase: pointFromScalar = secp256k1_ec_pubkey_create (ecmult_gen: constant time).
 * - msm (public values): pointMultiply = secp256k1_ec_pubkey_tweak_mul (variable-time ecmult) and
 *   pointAdd.
 * - mulPoint (the scalar may be secret): tiny-secp256k1 exposes no constant-time multiplication of an
 *   arbitrary point (no ECDH), so this one operation runs on the reference (noble) group's
 *   constant-time ladder. No suite over secp256k1 multiplies a point other than the base by a secret
 *   today (decapsulation is hpke-x25519 / hpke-p256 only), so this costs nothing on the signing path.
 * - neg: SEC 1 v2 §2.3.3: -P = (x, p - y) and p - y has the other parity (y != 0 on secp256k1), so the
 *   compressed encoding of -P is that of P with the prefix 02 <-> 03.
 */
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { ErrorCode, TesseraError } from '../errors.js';
import type { Group, XmdHash } from '../group.js';
import { secp256k1Group } from './secp256k1-common.js';

/** The slice of tiny-secp256k1 (v2) this adapter uses. */
export interface TinySecp256k1 {
  isPoint(p: Uint8Array): boolean;
  pointCompress(p: Uint8Array, compressed?: boolean): Uint8Array;
  pointFromScalar(d: Uint8Array, compressed?: boolean): Uint8Array | null;
  pointMultiply(p: Uint8Array, tweak: Uint8Array, compressed?: boolean): Uint8Array | null;
  pointAdd(pA: Uint8Array, pB: Uint8Array, compressed?: boolean): Uint8Array | null;
}

export const TINY_SECP256K1_FUNCTIONS = ['isPoint', 'pointCompress', 'pointFromScalar', 'pointMultiply', 'pointAdd'] as const;

/** `reference` is the noble secp256k1 group (core/suites.ts NOBLE_GROUPS). */
export function tinySecp256k1Group(tiny: TinySecp256k1, reference: Group, options: { sha256?: XmdHash; randomBytes?: (n: number) => Uint8Array } = {}): Group {
  for (const f of TINY_SECP256K1_FUNCTIONS) {
    if (typeof (tiny as unknown as Record<string, unknown>)[f] !== 'function') {
      throw new TesseraError(ErrorCode.BadInput, `tiny-secp256k1 lacks ${f}`);
    }
  }
  const must = (u: Uint8Array | null, op: string): Uint8Array => {
    // Unreachable for valid points and scalars in [1, n): a failure here is a broken build.
    if (u === null) throw new TesseraError(ErrorCode.BadState, `tiny-secp256k1 ${op} failed`);
    return u;
  };
  return secp256k1Group(
    {
      backend: 'tiny-secp256k1 (WASM)',
      parseCompressed: (b) => (tiny.isPoint(b) ? tiny.pointCompress(b, false) : null),
      compress: (u) => tiny.pointCompress(u, true),
      mulBase: (k) => must(tiny.pointFromScalar(k, false), 'pointFromScalar'),
      mul(u, k) {
        const p = reference.mulPoint(reference.pointFromBytes(tiny.pointCompress(u, true), 'point'), bytesToNumberBE(k));
        return tiny.pointCompress(reference.pointToBytes(p), false);
      },
      mulPublic: (u, k) => must(tiny.pointMultiply(u, k, false), 'pointMultiply'),
      sum(us) {
        let acc: Uint8Array | null = null;
        for (const u of us) acc = acc === null ? u : tiny.pointAdd(acc, u, false);
        return acc;
      },
      neg(u) {
        const c = tiny.pointCompress(u, true);
        c[0] = c[0] === 0x02 ? 0x03 : 0x02;
        return tiny.pointCompress(c, false);
      },
      sha256: options.sha256,
      randomBytes: options.randomBytes,
    },
    reference,
  );
}
