/**
 * AES-256-GCM (NIST SP 800-38D) and HMAC-SHA-256 (RFC 2104) for the store, on node:crypto (OpenSSL):
 * the same bytes as @noble/ciphers' gcm (ciphertext || 16-byte tag) and @noble/hashes' hmac, which the
 * store used before, so every data dir written either way opens either way. OpenSSL is several times
 * faster per call on the store's short records (one share read and one audit write per signature).
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

const TAG_LENGTH = 16;

/** GCM encryption: ciphertext || tag, in a fresh Uint8Array. */
export function gcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  c.setAAD(aad);
  const body = c.update(plaintext);
  const tail = c.final();
  const out = new Uint8Array(body.length + tail.length + TAG_LENGTH);
  out.set(body, 0);
  out.set(tail, body.length);
  out.set(c.getAuthTag(), body.length + tail.length);
  return out;
}

/**
 * GCM decryption of ciphertext || tag. Throws (a plain Error: the caller's guard says what failed to
 * decrypt) unless the tag verifies; the plaintext is handed out only after it did (OpenSSL's
 * intermediate copy is wiped).
 */
export function gcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (!(sealed instanceof Uint8Array) || sealed.length < TAG_LENGTH) throw new Error('ciphertext too short');
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
  const body = d.update(sealed.subarray(0, sealed.length - TAG_LENGTH));
  try {
    d.final(); // throws when the tag does not verify
    return Uint8Array.from(body);
  } catch {
    throw new Error('authentication tag does not verify');
  } finally {
    body.fill(0);
  }
}

/** HMAC-SHA-256(key, message), in a fresh Uint8Array. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  return Uint8Array.from(createHmac('sha256', key).update(message).digest());
}
