/**
 * Node identity signatures: ML-DSA-65 (FIPS 204), pure mode with an empty context.
 *
 * Node identities sign coordinator challenges, end-to-end channel envelopes, DKG broadcasts and audit
 * checkpoints. The engine is @noble/post-quantum here; liboqs interoperates with it in pure mode with an
 * empty context, so a faster engine can be swapped in behind these three functions.
 */
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

export function identitySign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== IDENTITY_SECRET_KEY_LENGTH) {
    throw new TesseraError(ErrorCode.BadInput, 'identity secret key: wrong length');
  }
  return ml_dsa65.sign(message, secretKey);
}

/** Never throws: a malformed key or signature is simply not valid. */
export function identityVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== IDENTITY_PUBLIC_KEY_LENGTH) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== IDENTITY_SIGNATURE_LENGTH) return false;
  try {
    return ml_dsa65.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
