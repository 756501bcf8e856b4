/**
 * How protocol code authenticates broadcasts without doing I/O: the caller injects its identity
 * signer and the other parties' verifiers. In the cluster this is each node's ML-DSA-65 identity
 * (FIPS 204); tests may inject any signature scheme.
 *
 * A broadcast signed this way is transferable evidence: if a sender signs two different packages for
 * the same session and round, any party can prove it, so an equivocating sender is named and an
 * honest one never is.
 */
export interface PartyAuthenticator {
  /** Sign `message` as this party. */
  sign(message: Uint8Array): Uint8Array;
  /** True when party `index` signed `message`. Must not throw. */
  verify(index: number, message: Uint8Array, signature: Uint8Array): boolean;
}
