/**
 * The node's long-term keys, made on first start and kept encrypted in its ShareStore:
 *   - an ML-DSA-65 identity (core/identity.ts): signs coordinator challenges, channel envelopes, broadcasts;
 *   - an ML-KEM-768 key pair (core/wrap.ts generateWrappingKeyPair): the channel / import key whose public
 *     part is published so shares can be wrapped to this node.
 *
 * Both are stored as one secret record, so a crash can never leave one without the other. Checking the
 * identity public key against the cluster membership is the node's job at startup.
 */
import { framed, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import {
  IDENTITY_PUBLIC_KEY_LENGTH,
  IDENTITY_SECRET_KEY_LENGTH,
  generateIdentity,
  type IdentityKeyPair,
} from '../../core/identity.js';
import { generateWrappingKeyPair, type WrappingKeyPair } from '../../core/wrap.js';
import type { ShareStore } from './storage.js';

/** The secret record name holding the bundle. */
export const IDENTITY_SECRET_NAME = 'node-identity';
const BUNDLE_LABEL = 'tessera/node-identity/v1';
const KEM = 'ml-kem-768';

export interface NodeKeys {
  readonly identity: IdentityKeyPair;
  /** ML-KEM-768; `privateKey` is in core/wrap.ts's format (the 64-byte FIPS 203 seed). */
  readonly kem: WrappingKeyPair;
}

/**
 * Load the node's keys from the store, or make and store them on first start.
 * The caller owns the secret parts and should zeroize them at shutdown.
 */
export async function loadOrCreateIdentity(store: ShareStore): Promise<NodeKeys> {
  const existing = await store.getSecret(IDENTITY_SECRET_NAME);
  if (existing !== undefined) {
    try {
      return decodeBundle(existing);
    } finally {
      zeroize(existing);
    }
  }
  const identity = generateIdentity();
  const kem = await generateWrappingKeyPair(KEM);
  const bundle = encodeBundle({ identity, kem });
  try {
    await store.putSecret(IDENTITY_SECRET_NAME, bundle);
  } finally {
    zeroize(bundle);
  }
  return { identity, kem };
}

/** framed(label, kem name, identity pk, identity sk, kem pk, kem sk) — framing from core/bytes.ts. */
function encodeBundle(k: NodeKeys): Uint8Array {
  return framed(utf8ToBytes(BUNDLE_LABEL), utf8ToBytes(k.kem.kem), k.identity.publicKey, k.identity.secretKey, k.kem.publicKey, k.kem.privateKey);
}

function decodeBundle(b: Uint8Array): NodeKeys {
  const parts = unframe(b);
  const bad = 'node identity record is malformed';
  ensure(parts.length === 6, ErrorCode.BadMessage, bad);
  const [label, kemName, idPk, idSk, kemPk, kemSk] = parts as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  ensure(new TextDecoder().decode(label) === BUNDLE_LABEL, ErrorCode.BadMessage, bad);
  ensure(new TextDecoder().decode(kemName) === KEM, ErrorCode.BadMessage, `${bad}: unknown KEM`);
  ensure(idPk.length === IDENTITY_PUBLIC_KEY_LENGTH && idSk.length === IDENTITY_SECRET_KEY_LENGTH, ErrorCode.BadMessage, bad);
  ensure(kemPk.length > 0 && kemSk.length > 0, ErrorCode.BadMessage, bad);
  return {
    identity: { publicKey: idPk, secretKey: idSk },
    kem: { kem: KEM, publicKey: kemPk, privateKey: kemSk },
  };
}

/** Inverse of framed(): copies each part out of `b`. */
function unframe(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < b.length) {
    if (off + 4 > b.length) throw new TesseraError(ErrorCode.BadMessage, 'node identity record is malformed');
    const len = ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
    off += 4;
    if (off + len > b.length) throw new TesseraError(ErrorCode.BadMessage, 'node identity record is malformed');
    out.push(b.slice(off, off + len));
    off += len;
  }
  return out;
}
