/**
 * node/store/aead.ts: the store's AES-256-GCM and HMAC-SHA-256 on node:crypto produce and accept
 * exactly the bytes of @noble/ciphers' gcm and @noble/hashes' hmac (which wrote every existing data
 * dir), and a changed byte anywhere fails the tag.
 */
import { describe, expect, it } from 'vitest';
import { gcm } from '@noble/ciphers/aes.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { gcmOpen, gcmSeal, hmacSha256 } from '../../node/store/aead.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('node/store/aead.ts against @noble', () => {
  it('AES-256-GCM: same ciphertext || tag as noble, each opens the other, on 300 random records (0 to 600 bytes)', () => {
    for (let k = 0; k < 300; k++) {
      const key = randomBytes(32);
      const nonce = randomBytes(12);
      const aad = randomBytes(k % 70);
      const pt = randomBytes((k * 7) % 601);
      const mine = gcmSeal(key, nonce, aad, pt);
      const theirs = gcm(key, nonce, aad).encrypt(pt);
      expect(hex(mine)).toBe(hex(theirs));
      expect(hex(gcmOpen(key, nonce, aad, theirs))).toBe(hex(pt));
      expect(hex(gcm(key, nonce, aad).decrypt(mine))).toBe(hex(pt));
    }
  });

  it('AES-256-GCM: a changed ciphertext, tag, nonce, AAD or key, or a short input, is refused', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const aad = randomBytes(20);
    const sealed = gcmSeal(key, nonce, aad, randomBytes(64));
    const flip = (b: Uint8Array, i: number) => {
      const c = Uint8Array.from(b);
      c[i]! ^= 1;
      return c;
    };
    const refused = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof Error;
      }
      return false;
    };
    expect(refused(() => gcmOpen(key, nonce, aad, flip(sealed, 0)))).toBe(true);
    expect(refused(() => gcmOpen(key, nonce, aad, flip(sealed, sealed.length - 1)))).toBe(true);
    expect(refused(() => gcmOpen(key, flip(nonce, 3), aad, sealed))).toBe(true);
    expect(refused(() => gcmOpen(key, nonce, flip(aad, 5), sealed))).toBe(true);
    expect(refused(() => gcmOpen(flip(key, 9), nonce, aad, sealed))).toBe(true);
    expect(refused(() => gcmOpen(key, nonce, aad, sealed.subarray(0, 15)))).toBe(true);
  });

  it('HMAC-SHA-256: same tag as noble on 300 random keys and messages', () => {
    for (let k = 0; k < 300; k++) {
      const key = randomBytes(1 + (k % 80));
      const msg = randomBytes((k * 13) % 500);
      expect(hex(hmacSha256(key, msg))).toBe(hex(hmac(sha256, key, msg)));
    }
  });
});
