/**
 * RFC 9180 Appendix A base-mode vectors, run through threshold decapsulation.
 *
 * Source: /work/shared/vectors/rfc9180-hpke/base-mode.json (cfrg/draft-irtf-cfrg-hpke,
 * draft-irtf-cfrg-hpke.md Appendix A, extracted to JSON).
 *
 * For every DHKEM(X25519) and DHKEM(P-256) vector: the vector's skRm is Shamir-split 2-of-3 and 3-of-5,
 * each subset of players decapsulates the vector's enc, and the result must equal shared_secret.
 * Then the base-mode key schedule and every listed encryption are checked with core/hpke.ts.
 * DHKEM(P-521) vectors are skipped: Tessera has no P-521 suite.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decapCombine, decapPartial } from '../../core/decap.js';
import {
  aeadOpen,
  aeadSeal,
  AeadId,
  computeNonce,
  createContext,
  extractAndExpand,
  keySchedule,
  type HpkeSuiteParams,
  type KdfId,
} from '../../core/hpke.js';
import type { DecapPartialMsg } from '../../core/messages.js';
import { HPKE_P256, HPKE_X25519, type KemSuite } from '../../core/suites.js';
import { dealerKeys } from '../helpers/run-sign.js';

const SOURCE = '/work/shared/vectors/rfc9180-hpke/base-mode.json';

interface Encryption {
  'sequence number': string;
  pt: string;
  aad: string;
  nonce: string;
  ct: string;
}
interface Vector {
  mode: string;
  kem_id: string;
  kdf_id: string;
  aead_id: string;
  suite: string;
  info: string;
  pkRm: string;
  skRm: string;
  pkEm: string;
  skEm: string;
  enc: string;
  shared_secret: string;
  key_schedule_context: string;
  secret: string;
  key: string;
  base_nonce: string;
  exporter_secret: string;
  encryptions: Encryption[];
}

const file = JSON.parse(readFileSync(SOURCE, 'utf8')) as { source: string; vectors: Vector[] };
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const KEM_SUITES: Record<number, KemSuite> = { 0x0020: HPKE_X25519, 0x0010: HPKE_P256 };

const SUBSETS: Record<string, number[][]> = {
  '2-of-3': [[1, 2], [1, 3], [2, 3], [3, 1, 2]],
  '3-of-5': [[1, 2, 3], [2, 4, 5], [1, 3, 5], [5, 4, 3, 2, 1]],
};

describe(`RFC 9180 Appendix A base mode (${SOURCE})`, () => {
  it('the file holds the expected vectors', () => {
    expect(file.vectors.length).toBe(7);
    expect(file.vectors.every((v) => v.mode === '0')).toBe(true);
  });

  for (const v of file.vectors) {
    const kemId = Number(v.kem_id);
    const suite = KEM_SUITES[kemId];
    if (!suite) {
      // DHKEM(P-521, HKDF-SHA512) (kem_id 0x0012): no such suite in Tessera.
      it.skip(`${v.suite}: no Tessera suite for KEM ${kemId}`, () => {});
      continue;
    }
    const params: HpkeSuiteParams = { kemId, kdfId: Number(v.kdf_id) as KdfId, aeadId: Number(v.aead_id) as AeadId };

    it(`${v.suite}: threshold decapsulation of enc gives shared_secret`, () => {
      const enc = hex(v.enc);
      const sessionId = new Uint8Array(32).fill(0x5a);
      for (const [[t, n], label] of [[[2, 3], '2-of-3'], [[3, 5], '3-of-5']] as const) {
        const keys = dealerKeys(suite.id, t, n, { secret: suite.privateKeyToScalar(hex(v.skRm)) });
        const pkg = keys[0]!.publicKey;
        // The shared key is the vector's recipient key: pkRm = SerializePublicKey(skRm·G).
        expect(toHex(suite.publicKeyBytes(suite.group.pointFromBytes(pkg.commitments[0]!, 'gk')))).toBe(v.pkRm);
        const partials = new Map<number, DecapPartialMsg>(keys.map((k) => [k.secret.index, decapPartial(suite, k, enc, sessionId)]));
        for (const subset of SUBSETS[label]!) {
          const chosen = new Map(subset.map((i) => [i, partials.get(i)!]));
          const ss = decapCombine(suite, pkg, enc, chosen, sessionId);
          expect(toHex(ss), `${label} players ${subset.join(',')}`).toBe(v.shared_secret);
        }
      }
    });

    it(`${v.suite}: sender side — pkEm = enc = pk(skEm), DH(skEm, pkRm) gives shared_secret`, () => {
      // RFC 9180 §4.1 Encap with the vector's ephemeral key (DeriveKeyPair from ikmE is not
      // implemented in Tessera, so skEm is taken as given).
      const g = suite.group;
      const skE = suite.privateKeyToScalar(hex(v.skEm));
      expect(v.pkEm).toBe(v.enc);
      expect(toHex(suite.publicKeyBytes(g.mulBase(skE)))).toBe(v.enc);
      const dh = suite.dhBytes(g.mulPoint(suite.encToPoint(hex(v.pkRm)), skE));
      const ss = extractAndExpand(suite.kdfHash, suite.kemId, dh, hex(v.enc + v.pkRm), suite.secretLength);
      expect(toHex(ss)).toBe(v.shared_secret);
    });

    it(`${v.suite}: key schedule and every encryption`, () => {
      const ks = keySchedule(params, hex(v.shared_secret), hex(v.info));
      expect(toHex(ks.keyScheduleContext)).toBe(v.key_schedule_context);
      expect(toHex(ks.secret)).toBe(v.secret);
      expect(toHex(ks.key)).toBe(v.key);
      expect(toHex(ks.baseNonce)).toBe(v.base_nonce);
      expect(toHex(ks.exporterSecret)).toBe(v.exporter_secret);

      if (params.aeadId === AeadId.ExportOnly) {
        expect(v.encryptions.length).toBe(0);
        expect(() => aeadSeal(params, ks.key, ks.baseNonce, 0, new Uint8Array(0), new Uint8Array(1))).toThrow(/export-only/);
        return;
      }
      expect(v.encryptions.length).toBeGreaterThan(0);
      for (const e of v.encryptions) {
        const seq = Number(e['sequence number']);
        expect(toHex(computeNonce(ks.baseNonce, seq))).toBe(e.nonce);
        expect(toHex(aeadOpen(params, ks.key, ks.baseNonce, seq, hex(e.aad), hex(e.ct)))).toBe(e.pt);
        expect(toHex(aeadSeal(params, ks.key, ks.baseNonce, seq, hex(e.aad), hex(e.pt)))).toBe(e.ct);
      }

      // The stateful context: the first two encryptions are seq 0 and 1, in order.
      const [e0, e1] = v.encryptions;
      expect(Number(e0!['sequence number'])).toBe(0);
      expect(Number(e1!['sequence number'])).toBe(1);
      const recipient = createContext(params, hex(v.shared_secret), hex(v.info));
      expect(toHex(recipient.open(hex(e0!.aad), hex(e0!.ct)))).toBe(e0!.pt);
      // A tampered ciphertext fails and does not advance the sequence number.
      const bad = hex(e1!.ct);
      bad[0]! ^= 1;
      expect(() => recipient.open(hex(e1!.aad), bad)).toThrow(/authentication failed/);
      expect(toHex(recipient.open(hex(e1!.aad), hex(e1!.ct)))).toBe(e1!.pt);
      recipient.destroy();
      expect(() => recipient.open(hex(e1!.aad), hex(e1!.ct))).toThrow(/destroy/);

      const sender = createContext(params, hex(v.shared_secret), hex(v.info));
      expect(toHex(sender.seal(hex(e0!.aad), hex(e0!.pt)))).toBe(e0!.ct);
      expect(toHex(sender.seal(hex(e1!.aad), hex(e1!.pt)))).toBe(e1!.ct);
      expect(sender.seq).toBe(2);
    });
  }
});
