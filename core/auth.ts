/**
 * How protocol code authenticates broadcasts without doing I/O: the caller injects its identity
 * signer and the other parties' verifiers. In the cluster this is each node's ML-DSA-65 identity
 * (FIPS 204); tests may inject any signature scheme.
 *
 * A broadcast signed this way is transferable evidence: if a sender signs two different packages for
 * the same session and round, any party can prove it, so an equivocating sender is named and an
 * honest one never is.
 */
import { ErrorCode, ensure, guard } from './errors.js';

/** Upper bound on an identity signature (ML-DSA-87 is 4627 bytes); anything longer is not a signature. */
export const MAX_AUTH_SIGNATURE_LENGTH = 8192;

export interface PartyAuthenticator {
  /** Sign `message` as this party. */
  sign(message: Uint8Array): Uint8Array;
  /** True when party `index` signed `message`. Must not throw. */
  verify(index: number, message: Uint8Array, signature: Uint8Array): boolean;
}

/** The one shape check of an injected authenticator (DKG, refresh and signing sessions). */
export function checkAuthenticator(auth: unknown): asserts auth is PartyAuthenticator {
  ensure(
    typeof auth === 'object' &&
      auth !== null &&
      typeof (auth as PartyAuthenticator).sign === 'function' &&
      typeof (auth as PartyAuthenticator).verify === 'function',
    ErrorCode.BadInput,
    'authenticator must have sign and verify',
  );
}

/** Sign `message` as this party; a signer that throws or returns no bytes is the caller's BadInput. */
export function authSign(auth: PartyAuthenticator, message: Uint8Array, what: string): Uint8Array {
  const signature = guard(ErrorCode.BadInput, `${what}: the authenticator failed to sign`, () => auth.sign(message));
  ensure(
    signature instanceof Uint8Array && signature.length > 0 && signature.length <= MAX_AUTH_SIGNATURE_LENGTH,
    ErrorCode.BadInput,
    `${what}: authenticator returned no signature`,
  );
  return Uint8Array.from(signature);
}

/** True only when party `index` signed `message`; an authenticator that throws means "not valid". */
export function authVerify(auth: PartyAuthenticator, index: number, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return auth.verify(index, message, signature) === true;
  } catch {
    return false;
  }
}
