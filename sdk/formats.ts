/**
 * Key formats for the SDK and the CLI (issue 11, item 3). CONTRACT STUB: the signatures below are
 * fixed; the bodies are being written.
 */
import { TesseraClientError } from './http.js';

export type PublicKeyFormat = 'raw' | 'spki' | 'pem' | 'jwk';
export const PUBLIC_KEY_FORMATS: readonly PublicKeyFormat[] = ['raw', 'spki', 'pem', 'jwk'];

/**
 * A key's public key (the suite's raw encoding, hex or bytes, as KeyInfo.publicKey) in another format:
 * raw → hex; spki → hex of the DER SubjectPublicKeyInfo; pem → PEM text; jwk → a JWK object.
 * A suite with no standard encoding in that format throws TesseraClientError('UNSUPPORTED_FORMAT')
 * saying why.
 */
export function formatPublicKey(suite: string, publicKey: string | Uint8Array, format: PublicKeyFormat): string | Record<string, unknown> {
  void suite, publicKey, format;
  throw new TesseraClientError('UNSUPPORTED_FORMAT', 'not built yet');
}

/** What `combine` returns: the scalar always, plus the standard private-key encoding where one exists. */
export interface PrivateKeyEncodings {
  /** The secret scalar, hex, in the suite's scalar encoding (little-endian for ed25519/X25519). */
  scalar: string;
  /** PKCS#8 PEM, where a standard one exists for this suite and scalar. */
  pkcs8Pem?: string;
  /** hpke-x25519 only: the X25519 private key bytes, hex, when one exists for this scalar. */
  x25519PrivateKey?: string;
  /** Why an encoding is missing (one sentence), when one is. */
  note?: string;
}
export function privateKeyEncodings(suite: string, scalar: Uint8Array): PrivateKeyEncodings {
  void suite, scalar;
  throw new TesseraClientError('UNSUPPORTED_FORMAT', 'not built yet');
}

/** Hex with an optional 0x/0X prefix → lowercase hex without it; bad hex throws TesseraClientError('BAD_INPUT') naming `what`. */
export function normalizeHex(value: string, what: string): string {
  void value, what;
  throw new TesseraClientError('BAD_INPUT', 'not built yet');
}
