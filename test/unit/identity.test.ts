import { describe, expect, it } from 'vitest';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { generateIdentity, identityEngineName, identitySign, identityVerify, loadIdentityEngine } from '../../core/identity.js';

describe('ML-DSA-65 identities: liboqs and noble interoperate (pure mode, empty context)', () => {
  it('noble signs, liboqs verifies; liboqs signs, noble verifies; tampering fails both', async () => {
    const id = generateIdentity();
    const msg = new TextEncoder().encode('tessera identity interop');
    expect(identityEngineName()).toBe('noble');
    const nobleSig = identitySign(id.secretKey, msg);
    await loadIdentityEngine();
    expect(identityEngineName()).toBe('liboqs');
    expect(identityVerify(id.publicKey, msg, nobleSig)).toBe(true);
    const oqsSig = identitySign(id.secretKey, msg);
    expect(ml_dsa65.verify(oqsSig, msg, id.publicKey)).toBe(true);
    expect(identityVerify(id.publicKey, msg, oqsSig)).toBe(true);
    const bad = Uint8Array.from(oqsSig);
    bad[10]! ^= 1;
    expect(identityVerify(id.publicKey, msg, bad)).toBe(false);
    expect(ml_dsa65.verify(bad, msg, id.publicKey)).toBe(false);
    expect(identityVerify(id.publicKey, new TextEncoder().encode('other'), oqsSig)).toBe(false);
    expect(identityVerify(id.publicKey.subarray(1), msg, oqsSig)).toBe(false);
    expect(() => identitySign(id.secretKey.subarray(1), msg)).toThrow(/wrong length/);
    // Buffers (a Uint8Array subclass) work too: liboqs-js needs plain arrays, identity.ts copies.
    const bufSig = identitySign(Buffer.from(id.secretKey), Buffer.from(msg));
    expect(identityVerify(Buffer.from(id.publicKey), Buffer.from(msg), Buffer.from(bufSig))).toBe(true);
  });
});
