/**
 * X-Wing KEM test vectors (draft-connolly-cfrg-xwing-kem), from /work/shared/vectors/xwing/test-vectors.json
 * (dconnolly/draft-connolly-cfrg-xwing-kem, spec/test-vectors.json).
 *
 * Each vector: seed (32) -> sk (32, the seed itself) and pk (1216); eseed (64) -> ct (1120) and ss (32).
 * Engine: @noble/post-quantum's ml_kem768_x25519 (its X-Wing). Cross-check: @hpke/hybridkem-x-wing,
 * which Tessera's share wrapping uses, reproduces every value too (its encap takes eseed as `ekm`).
 * Finally Tessera's own wrap/unwrap runs with each vector key pair.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { XWing } from '@hpke/hybridkem-x-wing';
import { fromHex, toHex } from '../../core/bytes.js';
import { generateWrappingKeyPair, unwrapShare, wrapShare, type WrappingKeyPair } from '../../core/wrap.js';
import { getSuite } from '../../core/suites.js';

const SOURCE = '/work/shared/vectors/xwing/test-vectors.json';

interface XWingVector {
  seed: string;
  sk: string;
  pk: string;
  eseed: string;
  ct: string;
  ss: string;
}

const vectors = JSON.parse(readFileSync(SOURCE, 'utf8')) as XWingVector[];

describe('X-Wing vectors', () => {
  it('the file holds vectors with the expected field sizes', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(3);
    for (const v of vectors) {
      expect([v.seed, v.sk, v.pk, v.eseed, v.ct, v.ss].map((h) => h.length / 2)).toEqual([32, 32, 1216, 64, 1120, 32]);
    }
  });

  vectors.forEach((v, i) => {
    it(`vector ${i}: noble X-Wing reproduces sk, pk, ct, ss and decapsulates ct to ss`, () => {
      const seed = fromHex(v.seed, 'seed', 32);
      const { secretKey, publicKey } = ml_kem768_x25519.keygen(seed);
      expect(toHex(secretKey)).toBe(v.sk);
      expect(toHex(publicKey)).toBe(v.pk);
      expect(toHex(ml_kem768_x25519.getPublicKey(fromHex(v.sk, 'sk')))).toBe(v.pk);

      const { cipherText, sharedSecret } = ml_kem768_x25519.encapsulate(publicKey, fromHex(v.eseed, 'eseed', 64));
      expect(toHex(cipherText)).toBe(v.ct);
      expect(toHex(sharedSecret)).toBe(v.ss);
      expect(toHex(ml_kem768_x25519.decapsulate(fromHex(v.ct, 'ct'), fromHex(v.sk, 'sk')))).toBe(v.ss);
    });

    it(`vector ${i}: @hpke/hybridkem-x-wing reproduces pk, sk, ct, ss and decapsulates ct to ss`, async () => {
      const kem = new XWing();
      const kp = await kem.generateKeyPairDerand(fromHex(v.seed, 'seed', 32));
      expect(toHex(new Uint8Array(await kem.serializePublicKey(kp.publicKey)))).toBe(v.pk);
      expect(toHex(new Uint8Array(await kem.serializePrivateKey(kp.privateKey)))).toBe(v.sk);

      const pk = await kem.deserializePublicKey(fromHex(v.pk, 'pk'));
      const { enc, sharedSecret } = await kem.encap({ recipientPublicKey: pk, ekm: fromHex(v.eseed, 'eseed', 64) });
      expect(toHex(new Uint8Array(enc))).toBe(v.ct);
      expect(toHex(new Uint8Array(sharedSecret))).toBe(v.ss);

      const sk = await kem.deserializePrivateKey(fromHex(v.sk, 'sk'));
      const ss = await kem.decap({ recipientKey: sk, enc: fromHex(v.ct, 'ct') });
      expect(toHex(new Uint8Array(ss))).toBe(v.ss);
    });
  });

  it('Tessera wraps to and unwraps with each vector key pair', async () => {
    const suite = getSuite('ed25519');
    const share = { suite: suite.id, index: 1, epoch: 0, value: suite.group.scalarToBytes(suite.group.randomScalar()) };
    const binding = { keyId: 'xwing-vector', version: 1, groupPublicKey: suite.publicKeyBytes(suite.group.base) };
    for (const v of vectors) {
      const recipient: WrappingKeyPair = { kem: 'x-wing', publicKey: fromHex(v.pk, 'pk'), privateKey: fromHex(v.sk, 'sk') };
      const wrapped = await wrapShare(recipient.publicKey, 'x-wing', share, binding);
      const opened = await unwrapShare(recipient, wrapped, { ...binding, suite: share.suite, index: 1, epoch: 0 });
      expect(toHex(opened.value)).toBe(toHex(share.value));
    }
    // And a generated key pair has the vector format: the private key is the seed that derives pk.
    const fresh = await generateWrappingKeyPair('x-wing');
    expect(toHex(ml_kem768_x25519.keygen(fresh.privateKey).publicKey)).toBe(toHex(fresh.publicKey));
  });
});
