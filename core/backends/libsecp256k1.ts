/**
 * secp256k1 on libsecp256k1 through the `secp256k1` npm package's native binding
 * (`secp256k1/bindings`, never its index.js, which silently falls back to pure-JS elliptic). A pure
 * adapter: runtime/group-backend.ts loads the binding and passes it in.
 *
 * - mulBase: publicKeyCreate = secp256k1_ec_pubkey_create (ecmult_gen: constant time, blinded by
 *   contextRandomize, which the loader calls).
 * - mulPoint (the scalar may be secret): ecdh with a hash function that returns the point itself =
 *   secp256k1_ecdh, the library's constant-time ecmult_const. (publicKeyTweakMul is libsecp256k1's
 *   variable-time ecmult, so it serves msm, on public values, only.)
 * - add / sum: publicKeyCombine; neg: publicKeyNegate; parsing and encoding: publicKeyConvert
 *   (secp256k1_ec_pubkey_parse: x < p and on the curve; SEC 1 v2 §2.3.4).
 */
import { ErrorCode, TesseraError } from '../errors.js';
import type { Group, XmdHash } from '../group.js';
import { secp256k1Group } from './secp256k1-common.js';

/** The slice of the `secp256k1` package's binding API this adapter uses (each throws on failure). */
export interface Libsecp256k1Binding {
  publicKeyCreate(seckey: Uint8Array, compressed?: boolean): Uint8Array;
  publicKeyConvert(pubkey: Uint8Array, compressed?: boolean): Uint8Array;
  publicKeyNegate(pubkey: Uint8Array, compressed?: boolean): Uint8Array;
  publicKeyCombine(pubkeys: Uint8Array[], compressed?: boolean): Uint8Array;
  publicKeyTweakMul(pubkey: Uint8Array, tweak: Uint8Array, compressed?: boolean): Uint8Array;
  ecdh(
    pubkey: Uint8Array,
    seckey: Uint8Array,
    options: { hashfn: (x: Uint8Array, y: Uint8Array) => Uint8Array },
    output: Uint8Array,
  ): Uint8Array;
}

export const LIBSECP256K1_FUNCTIONS = [
  'publicKeyCreate',
  'publicKeyConvert',
  'publicKeyNegate',
  'publicKeyCombine',
  'publicKeyTweakMul',
  'ecdh',
] as const;

/** The binding's error for a sum that is the point at infinity (lib/index.js errors.PUBKEY_COMBINE). */
const SUM_AT_INFINITY = 'The sum of the public keys is not valid';

/** `reference` is the noble secp256k1 group (core/suites.ts NOBLE_GROUPS). */
export function libsecp256k1Group(binding: Libsecp256k1Binding, reference: Group, options: { sha256?: XmdHash; randomBytes?: (n: number) => Uint8Array } = {}): Group {
  for (const f of LIBSECP256K1_FUNCTIONS) {
    if (typeof (binding as unknown as Record<string, unknown>)[f] !== 'function') {
      throw new TesseraError(ErrorCode.BadInput, `secp256k1 binding lacks ${f}`);
    }
  }
  /** secp256k1_ecdh's hash function, made to return 04 || x || y: the product itself. */
  const point = (x: Uint8Array, y: Uint8Array): Uint8Array => {
    const u = new Uint8Array(65);
    u[0] = 0x04;
    u.set(x, 1);
    u.set(y, 33);
    return u;
  };
  return secp256k1Group(
    {
      backend: 'libsecp256k1 (native)',
      parseCompressed(b) {
        try {
          return binding.publicKeyConvert(b, false);
        } catch {
          return null;
        }
      },
      compress: (u) => binding.publicKeyConvert(u, true),
      mulBase: (k) => binding.publicKeyCreate(k, false),
      mul: (u, k) => binding.ecdh(u, k, { hashfn: point }, new Uint8Array(65)),
      mulPublic: (u, k) => binding.publicKeyTweakMul(u, k, false),
      sum(us) {
        try {
          return binding.publicKeyCombine(us, false);
        } catch (e) {
          if ((e as Error).message === SUM_AT_INFINITY) return null;
          throw e;
        }
      },
      neg: (u) => binding.publicKeyNegate(u, false),
      sha256: options.sha256,
      randomBytes: options.randomBytes,
    },
    reference,
  );
}
