/**
 * HPKE (RFC 9180, base mode) to a Tessera KEM key, and the sealed-message container of the CLI
 * (issue 11, item 2). CONTRACT STUB: the signatures below are fixed; the bodies are being written.
 * Cluster.seal / open / encapsulate (sdk/client.ts) use these.
 */
import { TesseraClientError } from './http.js';

export interface HpkeOptions {
  /** RFC 9180 `info`; default empty. */
  info?: Uint8Array;
  /** Additional authenticated data; default empty. */
  aad?: Uint8Array;
}

/** Seal `plaintext` to a KEM suite's public key (raw encoding, hex or bytes): SetupBaseS + Seal (RFC 9180 §5.1.1, §5.2). */
export async function sealToPublicKey(suite: string, publicKey: string | Uint8Array, plaintext: Uint8Array, o: HpkeOptions = {}): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  void suite, publicKey, plaintext, o;
  throw new TesseraClientError('BAD_INPUT', 'not built yet');
}

/** The raw KEM: Encap(pkR) (RFC 9180 §4.1) → enc and the KEM shared secret. */
export async function encapsulateToPublicKey(suite: string, publicKey: string | Uint8Array): Promise<{ enc: Uint8Array; sharedSecret: Uint8Array }> {
  void suite, publicKey;
  throw new TesseraClientError('BAD_INPUT', 'not built yet');
}

/** The sealed form the CLI writes: carries enc and the ciphertext (format defined in the body's doc). */
export function encodeSealedMessage(m: { enc: Uint8Array; ciphertext: Uint8Array }): Uint8Array {
  void m;
  throw new TesseraClientError('BAD_INPUT', 'not built yet');
}
export function decodeSealedMessage(bytes: Uint8Array): { enc: Uint8Array; ciphertext: Uint8Array } {
  void bytes;
  throw new TesseraClientError('BAD_INPUT', 'not built yet');
}
