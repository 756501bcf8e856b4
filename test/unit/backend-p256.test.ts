/**
 * core/backends/p256-node.ts: P-256 with k·G and k·P on node:crypto's ECDH (OpenSSL), everything else
 * on noble (issue 12). Checked against noble:
 *   - mulBase / mulPoint / msm on random inputs (both y parities of k·P occur) and on every edge the
 *     backend answers apart: k = 0, 1, n - 1, k >= n (reduced), P = identity, G, -G, -P, msm sizes
 *     on both sides of MSM_NOBLE_FROM with identities and zero scalars;
 *   - faults: a node:crypto missing what the adapter needs is refused; one whose k·G is wrong fails the
 *     known-answer check at load; one whose ECDH x-coordinates are wrong cannot single out a candidate
 *     y, so noble's ladder answers and the results stay right;
 *   - installed process-wide (runtime/group-backend.ts, fresh module instance): FROST p256 signing,
 *     hpke-p256 threshold decapsulation of an @hpke/core message and a DKLs23 ecdsa-p256 2-of-3
 *     signature verified by node:crypto all run on it.
 */
import * as nodeCrypto from 'node:crypto';
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { MSM_NOBLE_FROM, NODE_P256_BACKEND, nodeP256Group, type NodeCryptoEcdh } from '../../core/backends/p256-node.js';
import { toHex } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { Group, Point } from '../../core/group.js';
import { NOBLE_GROUPS } from '../../core/suites.js';

const ref = NOBLE_GROUPS['P-256'];
const g = nodeP256Group(nodeCrypto, ref);
const n = ref.order;
const hexOf = (G: Group, p: Point) => (G.isIdentity(p) ? 'identity' : toHex(G.pointToBytes(p)));

describe('nodeP256Group agrees with noble', () => {
  it('is a P-256 group named for its backend, over noble points', () => {
    expect(g.backend).toBe(NODE_P256_BACKEND);
    expect(g.backend).toBe('node:crypto (OpenSSL)');
    expect([g.name, g.order, g.scalarLength, g.pointLength]).toEqual([ref.name, ref.order, ref.scalarLength, ref.pointLength]);
    expect(g.base).toBe(ref.base);
    expect(g.identity).toBe(ref.identity);
  });

  it('300 random scalars and points: mulBase and mulPoint; both y parities of k·P occur', () => {
    const parities = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const a = ref.randomScalar();
      const k = ref.randomScalar();
      const P = ref.mulBase(a);
      expect(hexOf(g, g.mulBase(k)), `mulBase i=${i}`).toBe(hexOf(ref, ref.mulBase(k)));
      // k·(a·G) = (k·a)·G: noble's base multiplication is the cheap reference.
      const kP = g.mulPoint(P, k);
      expect(hexOf(g, kP), `mulPoint i=${i}`).toBe(hexOf(ref, ref.mulBase(ref.mul(k, a))));
      parities.add(g.pointToBytes(kP)[0]!);
    }
    expect([...parities].sort()).toEqual([2, 3]);
  });

  it('a few products against noble\'s own ladder', () => {
    for (let i = 0; i < 5; i++) {
      const P = ref.mulBase(ref.randomScalar());
      const k = ref.randomScalar();
      expect(hexOf(g, g.mulPoint(P, k))).toBe(hexOf(ref, ref.mulPoint(P, k)));
    }
  });

  it('edge scalars (0, 1, 2, n - 1, n, n + 1, 2n - 1, 2^256 - 1) and points (identity, G, -G, 2G, P, -P)', () => {
    const P = ref.mulBase(ref.randomScalar());
    const points = [ref.identity, ref.base, ref.negPoint(ref.base), ref.mulBase(2n), P, ref.negPoint(P)];
    for (const k of [0n, 1n, 2n, n - 1n, n, n + 1n, 2n * n - 1n, 2n ** 256n - 1n]) {
      expect(hexOf(g, g.mulBase(k)), `mulBase(${k})`).toBe(hexOf(ref, ref.mulBase(k)));
      for (const [j, Q] of points.entries()) {
        expect(hexOf(g, g.mulPoint(Q, k)), `mulPoint(point ${j}, ${k})`).toBe(hexOf(ref, ref.mulPoint(Q, k)));
      }
    }
    expect(g.isIdentity(g.mulPoint(P, n))).toBe(true);
    expect(g.isIdentity(g.mulBase(0n))).toBe(true);
  });

  it(`msm of 0 to ${MSM_NOBLE_FROM + 3} terms (node:crypto below, noble above ${MSM_NOBLE_FROM}) with G, the identity and zero scalars`, () => {
    for (const size of [0, 1, 2, 3, 5, MSM_NOBLE_FROM, MSM_NOBLE_FROM + 1, MSM_NOBLE_FROM + 3]) {
      const a = Array.from({ length: size }, () => ref.randomScalar());
      const k = Array.from({ length: size }, () => ref.randomScalar());
      const points = a.map((x) => ref.mulBase(x));
      if (size >= 3) {
        points[0] = ref.base;
        a[0] = 1n;
        points[1] = ref.identity;
        a[1] = 0n;
        k[2] = 0n;
      }
      // Σ k_i·(a_i·G) = (Σ k_i·a_i)·G.
      const combined = k.reduce((s, ki, i) => ref.add(s, ref.mul(ki, a[i]!)), 0n);
      expect(hexOf(g, g.msm(points, k)), `msm of ${size}`).toBe(hexOf(ref, ref.mulBase(combined)));
    }
    expect(() => g.msm([ref.base], [])).toThrow(TesseraError);
  });

  it('refuses a point of another curve (secp256k1)', () => {
    const e = (() => {
      try {
        g.mulPoint(NOBLE_GROUPS.secp256k1.base, 3n);
      } catch (x) {
        return x as TesseraError;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(TesseraError);
    expect(e!.code).toBe(ErrorCode.BadPoint);
  });
});

describe('faults in node:crypto', () => {
  it('a node:crypto without createECDH or ECDH.convertKey, or a reference that is not noble P-256, is refused', () => {
    expect(() => nodeP256Group({} as NodeCryptoEcdh, ref)).toThrow(/lacks createECDH/);
    expect(() => nodeP256Group({ createECDH: nodeCrypto.createECDH } as NodeCryptoEcdh, ref)).toThrow(/lacks createECDH or ECDH.convertKey/);
    expect(() => nodeP256Group(nodeCrypto, NOBLE_GROUPS.secp256k1)).toThrow(/P-256 group only/);
  });

  /** node:crypto with createECDH's objects changed by `patch`. */
  const patched = (patch: (e: nodeCrypto.ECDH) => void): NodeCryptoEcdh => ({
    ECDH: nodeCrypto.ECDH,
    createECDH(curve: string) {
      const e = nodeCrypto.createECDH(curve);
      patch(e);
      return e;
    },
  });

  it('a wrong k·G fails the known-answer check at load', () => {
    const broken = patched((e) => {
      const real = e.getPublicKey.bind(e);
      // Off by one base point: k·G + G.
      const wrong = () => Buffer.from((ref.addPoints(ref.base, ref.pointFromBytes(real(null, 'compressed'), 'kG')) as unknown as { toBytes(c: boolean): Uint8Array }).toBytes(false));
      (e as unknown as { getPublicKey: () => Buffer }).getPublicKey = wrong;
    });
    expect(() => nodeP256Group(broken, ref)).toThrow(/known-answer check failed: mulBase/);
  });

  it('wrong ECDH x-coordinates leave no single candidate y: noble answers, and the results stay right', () => {
    const wrongX = patched((e) => {
      (e as unknown as { computeSecret: () => Buffer }).computeSecret = () => nodeCrypto.randomBytes(32);
    });
    const h = nodeP256Group(wrongX, ref);
    for (let i = 0; i < 3; i++) {
      const a = ref.randomScalar();
      const k = ref.randomScalar();
      expect(hexOf(h, h.mulPoint(ref.mulBase(a), k))).toBe(hexOf(ref, ref.mulBase(ref.mul(k, a))));
    }
  });
});

describe('installed process-wide: FROST p256, hpke-p256 and ecdsa-p256 run on it', () => {
  type Suites = typeof import('../../core/suites.js');
  let suites: Suites;
  beforeAll(async () => {
    vi.resetModules(); // fresh core/ modules: no P-256 point made yet
    suites = await import('../../core/suites.js');
    const runtime = await import('../../runtime/group-backend.js');
    const choice = runtime.selectGroupBackends({ prefer: 'native', warn: (m) => expect.fail(`unexpected fallback: ${m}`) });
    expect(choice.names['P-256']).toBe(NODE_P256_BACKEND);
    for (const id of ['p256', 'ecdsa-p256', 'hpke-p256'] as const) expect(suites.getSuite(id).group.backend).toBe(NODE_P256_BACKEND);
  });

  it('FROST(P-256, SHA-256) 2-of-3 signatures from a DKG verify, on every pair', async () => {
    const { runDkg } = await import('../helpers/run-dkg.js');
    const { runSign } = await import('../helpers/run-sign.js');
    const keys = runDkg('p256', 2, 3);
    const message = new TextEncoder().encode('p256 on node:crypto');
    const pk = suites.P256.publicKeyBytes(suites.P256.group.pointFromBytes(keys[0]!.publicKey.commitments[0]!, 'group key'));
    for (const pair of [[1, 2], [1, 3], [2, 3]]) {
      const sig = runSign(pair.map((i) => keys[i - 1]!), message);
      expect(suites.P256.verify(sig, message, pk)).toBe(true);
    }
  });

  it('hpke-p256: a 2-of-3 threshold decapsulation opens what @hpke/core sealed', async () => {
    const { runDkg } = await import('../helpers/run-dkg.js');
    const { decapPartial, decapCombine } = await import('../../core/decap.js');
    const { createContext, AeadId, KdfId } = await import('../../core/hpke.js');
    const kem = suites.HPKE_P256;
    const keys = runDkg('hpke-p256', 2, 3);
    const pkR = kem.publicKeyBytes(kem.group.pointFromBytes(keys[0]!.publicKey.commitments[0]!, 'group key'));
    const hpke = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
    const info = new TextEncoder().encode('backend-p256');
    const sealed = await hpke.seal({ recipientPublicKey: await hpke.kem.deserializePublicKey(pkR), info }, new TextEncoder().encode('opened'), new Uint8Array(0));
    const enc = new Uint8Array(sealed.enc);
    const sid = new Uint8Array(32).fill(7);
    const partials = new Map([1, 3].map((i) => [i, decapPartial(kem, keys[i - 1]!, enc, sid)]));
    const ss = decapCombine(kem, keys[0]!.publicKey, enc, partials, sid);
    const ctx = createContext({ kemId: kem.kemId, kdfId: KdfId.HkdfSha256, aeadId: AeadId.Aes128Gcm }, ss, info);
    expect(new TextDecoder().decode(ctx.open(new Uint8Array(0), new Uint8Array(sealed.ct)))).toBe('opened');
    ctx.destroy();
  });

  it('ecdsa-p256: a DKLs23 2-of-3 signature verifies in node:crypto (OpenSSL)', async () => {
    const { dealerKeys } = await import('../helpers/run-sign.js');
    const { withPairwiseSetup, signInProcess, expectStandardEcdsa } = await import('../helpers/ecdsa.js');
    const keys = withPairwiseSetup('ecdsa-p256', dealerKeys('ecdsa-p256', 2, 3));
    const message = new TextEncoder().encode('ecdsa-p256 on node:crypto');
    const { sigs, errors } = signInProcess('P-256', [keys[0]!, keys[2]!], sha256(message));
    expect(errors.size).toBe(0);
    expect(sigs.size).toBe(2);
    const pk = toHex(keys[0]!.publicKey.commitments[0]!);
    for (const s of sigs.values()) {
      expectStandardEcdsa('ecdsa-p256', { signature: toHex(s.compact), der: toHex(s.der), recoveryId: s.recovery }, message, pk);
    }
  });
});
