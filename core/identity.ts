/**
 * Node identity signatures: ML-DSA-65 (FIPS 204), pure mode with an empty context.
 *
 * Node identities sign coordinator challenges, end-to-end channel envelopes, DKG broadcasts and audit
 * checkpoints. Key generation (from a 32-byte seed, FIPS 204 ML-DSA.KeyGen_internal) uses
 * @noble/post-quantum. Signing and verification use liboqs (@oqs/liboqs-js, the Open Quantum Safe
 * project's WASM build) once `loadIdentityEngine()` has run — about 8x faster to sign and 10x to verify
 * here — and @noble/post-quantum until then. The two interoperate in pure mode with an empty context
 * (test/unit/identity.test.ts checks both directions).
 */
import { createMLDSA65, type MLDSA65 } from '@oqs/liboqs-js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ErrorCode, TesseraError } from './errors.js';

export const IDENTITY_PUBLIC_KEY_LENGTH = 1952;
export const IDENTITY_SECRET_KEY_LENGTH = 4032;
export const IDENTITY_SIGNATURE_LENGTH = 3309;

export interface IdentityKeyPair {
  readonly publicKey: Uint8Array;
  /** Secret: stored only encrypted under the node KEK. */
  readonly secretKey: Uint8Array;
}

export function generateIdentity(seed: Uint8Array = randomBytes(32)): IdentityKeyPair {
  if (seed.length !== 32) throw new TesseraError(ErrorCode.BadInput, 'identity seed: expected 32 bytes');
  const kp = ml_dsa65.keygen(seed);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/*
 * The liboqs engine is loaded once and shared: like core/pq.ts's ML-KEM engine it holds no keys or
 * per-call state, so it is an immutable engine as far as callers can tell. liboqs-js copies the secret
 * key into the WASM heap and frees it without cleansing; signing once more with a public throwaway key
 * makes the allocator hand out the same chunks and overwrites them (best effort, see core/pq.ts).
 */
interface IdentityEngine {
  readonly sig: MLDSA65;
  readonly scrubSecretKey: Uint8Array;
}
let engine: IdentityEngine | undefined;
let loading: Promise<void> | undefined;

/** Load the liboqs ML-DSA-65 engine (idempotent). Until it is loaded, noble signs and verifies. */
export function loadIdentityEngine(): Promise<void> {
  loading ??= createMLDSA65().then(
    (sig) => {
      engine = Object.freeze({ sig, scrubSecretKey: ml_dsa65.keygen(new Uint8Array(32)).secretKey });
    },
    () => {
      loading = undefined; // stay on noble; a later call may retry
    },
  );
  return loading;
}

export function identityEngineName(): 'liboqs' | 'noble' {
  return engine ? 'liboqs' : 'noble';
}

const SCRUB_MESSAGE = new Uint8Array(32);

/** liboqs-js accepts only plain Uint8Arrays (not Buffer or other subclasses): copy those. */
function plain(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b);
}

export function identitySign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== IDENTITY_SECRET_KEY_LENGTH) {
    throw new TesseraError(ErrorCode.BadInput, 'identity secret key: wrong length');
  }
  const e = engine;
  if (!e) return ml_dsa65.sign(message, secretKey);
  try {
    return e.sig.sign(plain(message), plain(secretKey));
  } catch {
    throw new TesseraError(ErrorCode.BadInput, 'identity secret key: signing failed');
  } finally {
    try {
      e.sig.sign(SCRUB_MESSAGE, e.scrubSecretKey);
    } catch {
      // best effort
    }
  }
}

/** Never throws: a malformed key or signature is simply not valid. */
export function identityVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== IDENTITY_PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== IDENTITY_SIGNATURE_LENGTH) return false;
  try {
    return engine ? engine.sig.verify(plain(message), plain(signature), plain(publicKey)) : ml_dsa65.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
