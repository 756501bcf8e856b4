/**
 * The browser stand-in for core/identity.ts in the console's bundle (scripts/build-console.mjs swaps it
 * in for every import of core/identity.js). core/identity.ts loads liboqs from disk with node:fs, which
 * a browser has not; checkpoint verification needs only its verify function and lengths, given here by
 * @noble/post-quantum's ML-DSA-65 (FIPS 204, pure mode, empty context): the same algorithm the node's
 * noble fallback verifies with, so a signature verifies here exactly when it does in core/identity.ts
 * (test/unit/identity.test.ts checks liboqs and noble agree).
 *
 * Verification only: nothing here signs, and the bundle holds no secret.
 */
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

export const IDENTITY_PUBLIC_KEY_LENGTH = 1952;
export const IDENTITY_SECRET_KEY_LENGTH = 4032;
export const IDENTITY_SIGNATURE_LENGTH = 3309;

/** Never throws: a malformed key or signature is simply not valid (as core/identity.ts identityVerify). */
export function identityVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== IDENTITY_PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== IDENTITY_SIGNATURE_LENGTH) return false;
  try {
    return ml_dsa65.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
