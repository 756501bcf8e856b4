/**
 * The quantum-readiness inventory (sdk/inventory.ts buildKeysReport, `tessera keys report`) as a pure
 * function: rows from key records and node answers, each protection classified from what the code
 * uses, and the protections it names checked against the code itself (suite kinds, the ML-KEM-768
 * pair keys, the ML-DSA-65 identities, the wrapping KEMs, the node's at-rest report).
 */
import { describe, expect, it } from 'vitest';
import type { KeyInfo } from '../../contract/http.js';
import { generateIdentity, IDENTITY_PUBLIC_KEY_LENGTH, IDENTITY_SIGNATURE_LENGTH, identitySign } from '../../core/identity.js';
import { ML_KEM_768 } from '../../core/pq.js';
import { getSuite, isSignatureSuite, SUITE_IDS, SUITE_SCHEMES, type SuiteId } from '../../core/suites.js';
import { generateWrappingKeyPair, WRAP_KEMS } from '../../core/wrap.js';
import { atRestProtection } from '../../node/store/kek.js';
import { PairKeys } from '../../node/sessions/pair-keys.js';
import { buildKeysReport, formatAge, formatKeysReport, KEY_PROTECTION, type KeysReportInput, type NodeProtection } from '../../sdk/inventory.js';

const DAY = 86_400_000;
const NOW = 1_800_000_000_000;
const AT_REST = atRestProtection({ kind: 'file', path: '/unused' });

function key(o: Partial<KeyInfo> & Pick<KeyInfo, 'keyId' | 'suite'>): KeyInfo {
  return {
    version: 1,
    scheme: SUITE_SCHEMES[o.suite as SuiteId],
    publicKey: 'aa',
    threshold: 2,
    parties: 3,
    epoch: 0,
    state: 'active',
    exportable: false,
    publicPackage: { suite: o.suite, threshold: 2, parties: 3, epoch: 0, commitments: [], verifyingShares: [] },
    createdAt: NOW - 10 * DAY,
    ...o,
  };
}

const answered = (index: number): NodeProtection => ({ index, answered: true, atRest: AT_REST });
const links = (scheme: string) => [1, 2, 3].map((index) => ({ index, url: `${scheme}://127.0.0.1:${7000 + index}` }));

function input(o: Partial<KeysReportInput> = {}): KeysReportInput {
  return {
    keys: [
      { tenant: 'default', key: key({ keyId: 'sig', suite: 'ed25519', version: 1, state: 'retired', createdAt: NOW - 40 * DAY, rotation: { periodMs: 30 * DAY, status: 'none' } }) },
      { tenant: 'default', key: key({ keyId: 'sig', suite: 'ed25519', version: 2, createdAt: NOW - 10 * DAY, rotation: { periodMs: 30 * DAY, status: 'ok', dueAt: NOW + 20 * DAY } }) },
      { tenant: 'default', key: key({ keyId: 'kem', suite: 'hpke-x25519', exportable: true }) },
      { tenant: 'acme', key: key({ keyId: 'ecdsa', suite: 'ecdsa-p256', publicPackage: { suite: 'ecdsa-p256', threshold: 2, parties: 3, epoch: 1, commitments: [], verifyingShares: [], indices: [1, 2, 4] } }) },
    ],
    tenants: ['acme', 'default'],
    nodes: [answered(1), answered(2), answered(3), answered(4)],
    links: links('https'),
    tlsLibrary: 'OpenSSL 3.0.19',
    now: NOW,
    ...o,
  };
}

describe('key inventory (sdk/inventory.ts)', () => {
  it('every suite says what its key rests on, its use matches core/suites.ts, and every key is classical', () => {
    expect(Object.keys(KEY_PROTECTION).sort()).toEqual([...SUITE_IDS].sort());
    for (const id of SUITE_IDS) {
      expect(KEY_PROTECTION[id].use, id).toBe(isSignatureSuite(getSuite(id)) ? 'signature' : 'kem');
      const r = buildKeysReport(input({ keys: [{ tenant: null, key: key({ keyId: 'k', suite: id }) }], tenants: null }));
      expect(r.keys[0]!.protection.key.status, id).toBe('classical');
      expect(r.keys[0]!.protection.key.what).toContain(SUITE_SCHEMES[id]);
      expect(r.keys[0]!.postQuantumEndToEnd).toBe(false);
      expect(r.keys[0]!.toChange[0]).toMatch(/^key: none yet/);
    }
  });

  it('one row per key: versions and states, age, rotation, exportable, tenant; ordered by tenant then key id', () => {
    const r = buildKeysReport(input());
    expect(r.keys.map((k) => [k.tenant, k.keyId])).toEqual([['acme', 'ecdsa'], ['default', 'kem'], ['default', 'sig']]);
    const sig = r.keys.find((k) => k.keyId === 'sig')!;
    expect(sig.versions.map((v) => [v.version, v.state])).toEqual([[1, 'retired'], [2, 'active']]);
    expect(sig.currentVersion).toBe(2);
    expect(sig.ageMs).toBe(40 * DAY);
    expect(sig.currentVersionAgeMs).toBe(10 * DAY);
    expect(sig.rotation).toEqual({ periodMs: 30 * DAY, status: 'ok', dueAt: NOW + 20 * DAY });
    expect(sig.exportable).toBe(false);
    expect(sig.protection.export.status).toBe('not-applicable');
    const kem = r.keys.find((k) => k.keyId === 'kem')!;
    expect(kem.use).toBe('kem');
    expect(kem.rotation).toEqual({ periodMs: null, status: 'no-period' });
    expect(kem.exportable).toBe(true);
    expect(kem.protection.export.status).toBe('post-quantum');
    expect(kem.protection.export.kems).toEqual(['ML-KEM-768 (FIPS 203)', 'X-Wing (X25519 + ML-KEM-768 hybrid)']);
    expect(kem.protection.transit.what).toContain('one-call ML-KEM-768');
    expect(kem.protection.key.what).toContain('harvest now, decrypt later');
    expect(sig.protection.key.what).toContain('forge its signatures');
    // A reshared committee: at rest is judged on the nodes that hold the shares.
    const ecdsa = r.keys.find((k) => k.keyId === 'ecdsa')!;
    expect(ecdsa.versions[0]!.nodes).toEqual([1, 2, 4]);
    expect(ecdsa.protection.atRest.nodes.map((n) => n.index)).toEqual([1, 2, 4]);
    expect(r.summary).toEqual({ keys: 3, versions: 4, postQuantumEndToEnd: 0, classicalKey: 3 });
  });

  it('at rest is what each holder node reports; a node that does not answer or does not report makes it unknown', () => {
    const ok = buildKeysReport(input()).keys[0]!.protection.atRest;
    expect(ok.status).toBe('post-quantum');
    expect(ok.what).toContain('AES-256-GCM under a 256-bit KEK (file)');
    const down = buildKeysReport(input({ nodes: [answered(1), { index: 2, answered: false, error: 'connect ECONNREFUSED' }, { index: 3, answered: true }, answered(4)] }));
    const sig = down.keys.find((k) => k.keyId === 'sig')!;
    expect(sig.protection.atRest.status).toBe('unknown');
    expect(sig.protection.atRest.what).toContain('node 2 did not answer');
    expect(sig.protection.atRest.what).toContain('node 3 does not report atRest');
    expect(sig.toChange.some((t) => t.startsWith('at rest: '))).toBe(true);
    // The ECDSA key is held by 1, 2, 4: node 3's silence is not its problem, node 2's is.
    expect(down.keys.find((k) => k.keyId === 'ecdsa')!.protection.atRest.what).not.toContain('node 3');
    const weak = buildKeysReport(input({ nodes: [1, 2, 3, 4].map((index) => ({ index, answered: true as const, atRest: { ...AT_REST, recordAead: 'AES-128-GCM', keyBits: 128 } })) }));
    expect(weak.keys[0]!.protection.atRest.status).toBe('unknown');
  });

  it('the SDK link: plain http is unprotected; TLS with OpenSSL below 3.5 is classical; 3.5 and later depend on both ends', () => {
    expect(buildKeysReport(input({ links: links('http') })).client.status).toBe('unprotected');
    const tls = buildKeysReport(input()).client;
    expect(tls.status).toBe('classical');
    expect(tls.what).toContain('OpenSSL 3.0.19');
    expect(buildKeysReport(input({ tlsLibrary: 'OpenSSL 3.5.1' })).client.status).toBe('unknown');
    expect(buildKeysReport(input()).keys[0]!.toChange.some((t) => t.startsWith('SDK to node: TLS'))).toBe(true);
  });

  it('refuses inconsistent input with a clear error', () => {
    const twice = input();
    expect(() => buildKeysReport({ ...twice, keys: [...twice.keys, twice.keys[0]!] })).toThrow(/version 1 is given twice/);
    expect(() => buildKeysReport(input({ nodes: [answered(1), answered(1)] }))).toThrow(/node 1 is given twice/);
    expect(() => buildKeysReport(input({ tenants: ['a', 'a'] }))).toThrow(/tenant is listed twice/);
    expect(() => buildKeysReport(input({ now: -1 }))).toThrow(/now/);
    expect(() => buildKeysReport(input({ links: [{ index: 1, url: 'not a url' }] }))).toThrow(/node 1: not a URL/);
  });

  it('the table: one line per key, what would need to change, the SDK link', () => {
    const text = formatKeysReport(buildKeysReport(input()));
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^KEY\s+SUITE\s+VERSIONS\s+AGE\s+ROTATION\s+EXPORTABLE\s+KEY-ITSELF\s+TRANSIT\s+EXPORT\s+AT-REST\s+PQ-END-TO-END$/);
    expect(lines[1]).toMatch(/^acme\/ecdsa\s+ecdsa-p256\s+v1:active\s+10d\s+no period\s+no\s+classical\s+PQ\s+-\s+PQ\s+no$/);
    expect(lines[2]).toMatch(/^default\/kem\s+hpke-x25519\s+v1:active\s+10d\s+no period\s+yes\s+classical\s+PQ\s+PQ\s+PQ\s+no$/);
    expect(lines[3]).toMatch(/^default\/sig\s+ed25519\s+v1:retired,v2:active\s+40d\s+ok \(every 30d\)\s+no\s+classical\s+PQ\s+-\s+PQ\s+no$/);
    expect(text).toContain('To be post-quantum end to end:');
    expect(text).toMatch(/- key: none yet: .*\[acme\/ecdsa, default\/sig\]/);
    expect(text).toContain('3 key(s), 4 version(s); 0 post-quantum end to end; tenants: acme, default.');
    expect(formatAge(59_999)).toBe('59s');
    expect(formatAge(3 * 3_600_000)).toBe('3h');
  });

  it('what the report names is what the code uses: ML-KEM-768 pair keys, ML-DSA-65 identities, the wrapping KEMs, the store', async () => {
    // Node-to-node pair keys: a period key is an ML-KEM-768 encapsulation key (FIPS 203: 1184 bytes).
    const pairKeys = new PairKeys({ self: 1, sweepIntervalMs: 0 });
    try {
      const lease = await pairKeys.lease();
      expect(lease.publicKey.length).toBe(ML_KEM_768.publicKeyLength);
      expect(ML_KEM_768.name).toBe('ML-KEM-768');
      lease.release();
    } finally {
      pairKeys.close();
    }
    // Node identities: ML-DSA-65 (FIPS 204: 1952-byte public keys, 3309-byte signatures).
    const id = generateIdentity();
    expect([id.publicKey.length, IDENTITY_PUBLIC_KEY_LENGTH]).toEqual([1952, 1952]);
    expect(identitySign(id.secretKey, new Uint8Array(1)).length).toBe(IDENTITY_SIGNATURE_LENGTH);
    expect(IDENTITY_SIGNATURE_LENGTH).toBe(3309);
    // Export wraps to these KEMs only (core/wrap.ts), and each makes keys of its standard size.
    expect([...WRAP_KEMS]).toEqual(['ml-kem-768', 'x-wing']);
    expect((await generateWrappingKeyPair('ml-kem-768')).publicKey.length).toBe(1184);
    expect((await generateWrappingKeyPair('x-wing')).publicKey.length).toBe(1216);
    // At rest, as a node reports it: the KEK source's kind, 256 bits, the store's algorithms; no key bytes.
    expect(atRestProtection({ kind: 'env', key: new Uint8Array(32).fill(7) })).toEqual({ provider: 'env', keyBits: 256, recordAead: 'AES-256-GCM', keyDerivation: 'HKDF-SHA256', recordMac: 'HMAC-SHA-256' });
  });
});
