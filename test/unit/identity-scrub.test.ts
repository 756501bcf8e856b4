/**
 * core/identity.ts signs on liboqs' WASM module and wipes the heap copy of the secret key with
 * OQS_MEM_cleanse before freeing it. After signatures, no 16-byte window of the secret parts of the key,
 * encoded or with s1/s2 unpacked to 32-bit coefficients, is left anywhere in the module's memory.
 */
import { describe, expect, it } from 'vitest';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { generateIdentity, identityEngineMemory, identitySign, identityVerify, loadIdentityEngine } from '../../core/identity.js';

/**
 * The secret parts of an ML-DSA-65 secret key (FIPS 204 §7.2 skEncode: rho || K || tr || s1 || s2 || t0;
 * rho and tr = H(pk) are public): every 16-byte window of K, s1, s2 and t0 as encoded, and the first 8
 * coefficients of each s1/s2 polynomial as int32 (skDecode, eta = 4).
 */
function keyPatterns(sk: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (const [from, to] of [[32, 64], [128, sk.length]] as const) {
    for (let o = from; o + 16 <= to; o += 16) out.push(Buffer.from(sk.subarray(o, o + 16)));
  }
  const s1Start = 32 + 32 + 64; // rho || K || tr
  for (let poly = 0; poly < 5 + 6; poly++) {
    const at = s1Start + poly * 128; // 256 coefficients of 4 bits
    const c = new Int32Array(8);
    for (let i = 0; i < 4; i++) {
      c[2 * i] = 4 - (sk[at + i]! & 15);
      c[2 * i + 1] = 4 - (sk[at + i]! >> 4);
    }
    out.push(Buffer.from(c.buffer));
  }
  return out;
}

describe('identity signing leaves no secret key in the liboqs module memory', () => {
  it('after signing messages of several sizes, the key is nowhere in the WASM memory; the signatures verify (also with noble)', async () => {
    await loadIdentityEngine();
    const memory = identityEngineMemory();
    expect(memory, 'the liboqs engine signs on its own module (OQS_MEM_cleanse available)').toBeInstanceOf(Uint8Array);
    const id = generateIdentity();
    for (const size of [0, 32, 200, 5000]) {
      const msg = new Uint8Array(size).fill(size & 0xff);
      const sig = identitySign(id.secretKey, msg);
      expect(identityVerify(id.publicKey, msg, sig)).toBe(true);
      expect(ml_dsa65.verify(sig, msg, id.publicKey)).toBe(true);
    }
    // Buffers (a Uint8Array subclass) sign too.
    expect(identityVerify(id.publicKey, Buffer.from('b'), identitySign(Buffer.from(id.secretKey), Buffer.from('b')))).toBe(true);
    const heap = identityEngineMemory()!; // read again: the memory may have grown
    const mem = Buffer.from(heap.buffer, heap.byteOffset, heap.byteLength);
    const left = keyPatterns(id.secretKey).filter((p) => mem.indexOf(p) >= 0);
    expect(left.length, 'windows of the secret key found in the module memory').toBe(0);
  });
});
