/**
 * Sealing to a Tessera KEM key (sdk/seal.ts), without a cluster: what sealToPublicKey seals, @hpke/core
 * opens with the single-party private key (and core/hpke.ts opens from encapsulateToPublicKey's secret
 * equal to @hpke/core's decapsulation); the sealed container's round trip and its clear refusals.
 */
import { describe, expect, it } from 'vitest';
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { createContext } from '../../core/hpke.js';
import { getKemSuite, KEM_SUITES } from '../../core/suites.js';
import { decodeSealedMessage, encapsulateToPublicKey, encodeSealedMessage, hpkeParams, sealToPublicKey } from '../../sdk/seal.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const buf = (b: Uint8Array) => b.slice().buffer as ArrayBuffer;

/** A single-party key pair of the suite, and @hpke/core's recipient side for it. */
async function recipient(suite: (typeof KEM_SUITES)[number]) {
  const sk = suite === 'hpke-x25519' ? x25519.utils.randomSecretKey() : p256.utils.randomSecretKey();
  const pk = suite === 'hpke-x25519' ? x25519.getPublicKey(sk) : p256.getPublicKey(sk, false);
  const kem = suite === 'hpke-x25519' ? new DhkemX25519HkdfSha256() : new DhkemP256HkdfSha256();
  const hpke = new CipherSuite({ kem, kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  const recipientKey = await hpke.kem.deserializePrivateKey(buf(sk));
  return { pk, hpke, recipientKey };
}

describe('sealToPublicKey / encapsulateToPublicKey', () => {
  for (const suite of KEM_SUITES) {
    it(`${suite}: @hpke/core opens what sealToPublicKey sealed (hex key with 0x, info, aad)`, async () => {
      const { pk, hpke, recipientKey } = await recipient(suite);
      const info = utf8('app v1');
      const aad = utf8('header');
      const { enc, ciphertext } = await sealToPublicKey(suite, `0x${Buffer.from(pk).toString('hex')}`, utf8('hello'), { info, aad });
      expect(enc.length).toBe(getKemSuite(suite).encLength);
      const ctx = await hpke.createRecipientContext({ recipientKey, enc: buf(enc), info: buf(info) });
      expect(new TextDecoder().decode(await ctx.open(buf(ciphertext), buf(aad)))).toBe('hello');
    });

    it(`${suite}: encapsulateToPublicKey's secret is @hpke/core's decapsulation, and core/hpke.ts seals with it for @hpke/core to open`, async () => {
      const { pk, hpke, recipientKey } = await recipient(suite);
      const { enc, sharedSecret } = await encapsulateToPublicKey(suite, pk);
      const theirs = new Uint8Array(await hpke.kem.decap({ recipientKey, enc: buf(enc) }));
      expect(Buffer.from(sharedSecret).toString('hex')).toBe(Buffer.from(theirs).toString('hex'));
      const ctx = createContext(hpkeParams(getKemSuite(suite)), sharedSecret, new Uint8Array(0));
      const ct = ctx.seal(new Uint8Array(0), utf8('raw kem'));
      ctx.destroy();
      const r = await hpke.createRecipientContext({ recipientKey, enc: buf(enc) });
      expect(new TextDecoder().decode(await r.open(buf(ct)))).toBe('raw kem');
    });
  }

  it('refuses a signing suite, an invalid public key and non-bytes plaintext with clear codes', async () => {
    await expect(sealToPublicKey('ed25519', new Uint8Array(32), utf8('x'))).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('signing suite') });
    await expect(sealToPublicKey('hpke-p256', '04' + '00'.repeat(64), utf8('x'))).rejects.toMatchObject({ code: 'BAD_POINT' });
    await expect(encapsulateToPublicKey('hpke-x25519', 'xyz')).rejects.toMatchObject({ code: 'BAD_INPUT' });
    const { pk } = await recipient('hpke-x25519');
    await expect(sealToPublicKey('hpke-x25519', pk, 'text' as never)).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('plaintext') });
  });
});

describe('sealed message container', () => {
  it('round-trips enc and ciphertext for both KEM lengths, starting with "TSSL" version 1', () => {
    for (const n of [32, 65]) {
      const m = { enc: Uint8Array.from({ length: n }, (_, k) => k), ciphertext: Uint8Array.from({ length: 40 }, (_, k) => 255 - k) };
      const bytes = encodeSealedMessage(m);
      expect(Buffer.from(bytes.subarray(0, 5)).toString('latin1')).toBe('TSSL\x01');
      expect(bytes.length).toBe(7 + n + 40);
      const back = decodeSealedMessage(bytes);
      expect(Buffer.from(back.enc)).toEqual(Buffer.from(m.enc));
      expect(Buffer.from(back.ciphertext)).toEqual(Buffer.from(m.ciphertext));
    }
  });

  it('refuses foreign, other-version, bad-length and truncated input with one clear message each', () => {
    const good = encodeSealedMessage({ enc: new Uint8Array(32), ciphertext: new Uint8Array(16) });
    const bad = (b: Uint8Array, why: RegExp) => expect(() => decodeSealedMessage(b)).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringMatching(why) }));
    bad(utf8('hello world, not sealed'), /not a Tessera sealed message/);
    bad(new Uint8Array(0), /not a Tessera sealed message/);
    bad(Uint8Array.from([...good.subarray(0, 4), 2, ...good.subarray(5)]), /version 2 is not supported/);
    bad(Uint8Array.from([...good.subarray(0, 5), 0, 33, ...good.subarray(7)]), /enc length 33/);
    bad(good.subarray(0, good.length - 1), /truncated/);
    expect(() => encodeSealedMessage({ enc: new Uint8Array(31), ciphertext: new Uint8Array(16) })).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => encodeSealedMessage({ enc: new Uint8Array(32), ciphertext: new Uint8Array(3) })).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });
});
