/**
 * Child keys of threshold keys (core/derive.ts): BIP-32 CKDpub for secp256k1 and bip340, checked
 * against @scure/bip32 (the reference, used in tests only) from the same xpub; signatures under child
 * keys verify in independent verifiers; the ed25519 additive derivation signs under node:crypto.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { randomBytes } from '@noble/hashes/utils.js';
import { HDKey } from '@scure/bip32';
import * as tiny from 'tiny-secp256k1';
import { describe, expect, it } from 'vitest';
import { toHex, utf8ToBytes } from '../../core/bytes.js';
import {
  derivationInfo,
  deriveKeyShare,
  formatDerivationPath,
  keygenChainCode,
  parseDerivationPath,
} from '../../core/derive.js';
import { isTesseraError } from '../../core/errors.js';
import { sessionDigest, type SessionParams } from '../../core/session.js';
import { getSigningSuite } from '../../core/suites.js';
import type { KeyShare } from '../../core/types.js';
import { aggregateSignature, signRound1, signRound2 } from '../../core/sign.js';
import type { SignCommitMsg, SignShareMsg } from '../../core/messages.js';
import { simulateDkg } from '../helpers/run-dkg.js';
import { runSign } from '../helpers/run-sign.js';

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function dkg(suite: 'bip340' | 'secp256k1' | 'ed25519' | 'p256') {
  const sessionId = randomBytes(16);
  const runId = randomBytes(32);
  const keys = simulateDkg(suite, 2, 3, { sessionId, runId }).map((o) => {
    if (!o.ok) throw o.error;
    return o.key;
  });
  // Every node computes the chain code from the agreed package: the same 32 bytes.
  const codes = keys.map((k) => toHex(keygenChainCode(k.publicKey, sessionId, runId)));
  expect(new Set(codes).size).toBe(1);
  return { keys, chainCode: keygenChainCode(keys[0]!.publicKey, sessionId, runId) };
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isTesseraError(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

const childKeys = (keys: KeyShare[], chainCode: Uint8Array, path: string) => keys.map((k) => deriveKeyShare(k, chainCode, parseDerivationPath(path)));

describe('derivation paths', () => {
  it('parses non-hardened paths and prints them canonically', () => {
    expect(parseDerivationPath('m')).toEqual([]);
    expect(parseDerivationPath('m/0/5')).toEqual([0, 5]);
    expect(formatDerivationPath(parseDerivationPath('m/2147483647/0'))).toBe('m/2147483647/0');
  });

  it('rejects hardened steps with a clear error', () => {
    for (const p of ["m/0'/5", 'm/0h', 'm/1H/2', 'm/2147483648']) expect(errorOf(() => parseDerivationPath(p))).toMatch(/hardened/);
  });

  it('rejects malformed paths with a clear error', () => {
    for (const p of ['', '0/5', 'm/', 'm//1', 'm/01', 'm/-1', 'm/1.5', 'm/abc', 'M/1', ' m/1', 'm/99999999999', `m${'/1'.repeat(256)}`]) {
      expect(errorOf(() => parseDerivationPath(p))).toMatch(/path/);
    }
    expect(errorOf(() => parseDerivationPath(5))).toMatch(/path/);
  });

  it('refuses suites without child keys', () => {
    const { keys } = dkg('p256');
    expect(errorOf(() => deriveKeyShare(keys[0]!, new Uint8Array(32), [0]))).toMatch(/p256 has no child keys/);
  });
});

describe.each(['bip340', 'secp256k1'] as const)('BIP-32 for %s keys made by DKG', (suiteId) => {
  const suite = getSigningSuite(suiteId);

  it('child public keys and xpubs equal what @scure/bip32 derives from the same xpub', () => {
    const { keys, chainCode } = dkg(suiteId);
    const root = derivationInfo(suiteId, keys[0]!.publicKey, chainCode);
    expect(root.path).toBe('m');
    const reference = HDKey.fromExtendedKey(root.xpub!);
    expect(toHex(reference.chainCode!)).toBe(toHex(chainCode));
    for (const path of ['m/0', 'm/0/5', 'm/7/2147483647/3', 'm/1/2/3/4/5']) {
      const ours = derivationInfo(suiteId, keys[0]!.publicKey, chainCode, parseDerivationPath(path));
      const theirs = reference.derive(path);
      const expected = suiteId === 'bip340' ? theirs.publicKey!.subarray(1) : theirs.publicKey!;
      expect(toHex(ours.publicKey)).toBe(toHex(expected));
      expect(ours.xpub).toBe(theirs.publicExtendedKey);
      expect(toHex(ours.chainCode)).toBe(toHex(theirs.chainCode!));
    }
  });

  it('signatures under child keys verify, on every 2-subset and with both y parities of the child', () => {
    const { keys, chainCode } = dkg(suiteId);
    const reference = HDKey.fromExtendedKey(derivationInfo(suiteId, keys[0]!.publicKey, chainCode).xpub!);
    const message = utf8ToBytes('child key message');
    const parities = new Set<number>();
    // Until both y parities of the child key were seen (bip340 negates for odd y), at least 3 children.
    for (let i = 0; i < 3 || (parities.size < 2 && i < 64); i++) {
      const path = `m/3/${i}`;
      const compressed = reference.derive(path).publicKey!;
      parities.add(compressed[0]!);
      const children = childKeys(keys, chainCode, path);
      for (const signers of [[0, 1], [0, 2], [1, 2]]) {
        const signature = runSign(signers.map((s) => children[s]!), message);
        expect(suite.verify(signature, message, suiteId === 'bip340' ? compressed.subarray(1) : compressed)).toBe(true);
        // Never under the parent key.
        expect(suite.verify(signature, message, suite.publicKeyBytes(suite.group.pointFromBytes(keys[0]!.publicKey.commitments[0]!, 'k')))).toBe(false);
      }
      for (const c of children) c.secret.value.fill(0);
    }
    expect(parities.size).toBe(2);
  });

  if (suiteId === 'bip340') {
    it('bip340 signatures of 32-byte messages under child keys verify in libsecp256k1 (tiny-secp256k1)', () => {
      const { keys, chainCode } = dkg('bip340');
      const message = randomBytes(32);
      for (const path of ['m/0', 'm/0/5', 'm/1', 'm/2', 'm/3']) {
        const child = derivationInfo('bip340', keys[0]!.publicKey, chainCode, parseDerivationPath(path));
        const signature = runSign(childKeys(keys, chainCode, path).slice(1), message);
        expect(tiny.verifySchnorr(message, child.publicKey, signature)).toBe(true);
      }
    });
  }
});

describe('ed25519 additive derivation', () => {
  it('signatures under child keys verify in node:crypto', () => {
    const { keys, chainCode } = dkg('ed25519');
    const message = utf8ToBytes('ed25519 child');
    const root = derivationInfo('ed25519', keys[0]!.publicKey, chainCode);
    expect(root.xpub).toBeUndefined();
    for (const path of ['m/0', 'm/0/5', 'm/9/9/9']) {
      const child = derivationInfo('ed25519', keys[0]!.publicKey, chainCode, parseDerivationPath(path));
      expect(toHex(child.publicKey)).not.toBe(toHex(root.publicKey));
      const signature = runSign(childKeys(keys, chainCode, path).slice(0, 2), message);
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, child.publicKey]), format: 'der', type: 'spki' });
      expect(cryptoVerify(null, message, key, signature)).toBe(true);
    }
  });
});

describe('keygen chain code', () => {
  it('depends on the whole agreed transcript, not only the group key', () => {
    const { keys } = dkg('bip340');
    const sessionId = randomBytes(16);
    const a = keygenChainCode(keys[0]!.publicKey, sessionId, new Uint8Array(32));
    const b = keygenChainCode(keys[0]!.publicKey, sessionId, new Uint8Array(32).fill(1));
    expect(toHex(a)).not.toBe(toHex(b));
    expect(a.length).toBe(32);
  });
});

describe('the path in the session digest (core/session.ts)', () => {
  const base: SessionParams = {
    operation: 'sign',
    tenant: 'default',
    keyId: 'k',
    version: 1,
    suite: 'bip340',
    threshold: 2,
    parties: 3,
    players: [1, 2],
    payloadDigest: new Uint8Array(32),
  };
  const sid = randomBytes(16);

  it('signers asked for different paths, or one for none, compute different digests', () => {
    const digests = [undefined, 'm/0/5', 'm/0/6', 'm/0'].map((path) => toHex(sessionDigest(sid, { ...base, ...(path !== undefined ? { path } : {}) })));
    expect(new Set(digests).size).toBe(4);
  });

  it('refuses a path outside sign, and a path not in canonical form', () => {
    expect(errorOf(() => sessionDigest(sid, { ...base, operation: 'refresh', players: [1, 2, 3], path: 'm/1' }))).toMatch(/only a sign session takes a derivation path/);
    for (const path of ['m', "m/1'", 'm/01']) expect(errorOf(() => sessionDigest(sid, { ...base, path }))).toMatch(/path/);
  });
});

describe('signers on different paths (the one-round path, where no session digest binds it)', () => {
  it('shares made for different child keys over one commitment list never combine into a signature', () => {
    const { keys, chainCode } = dkg('bip340');
    const suite = getSigningSuite('bip340');
    const message = randomBytes(32);
    const a = childKeys(keys, chainCode, 'm/0/5');
    const b = childKeys(keys, chainCode, 'm/0/6');
    const signers = [a[0]!, b[1]!]; // node 1 was told m/0/5, node 2 m/0/6
    const commits = new Map<number, SignCommitMsg>();
    const nonces = signers.map((k) => {
      const r1 = signRound1(suite, k.secret);
      commits.set(k.secret.index, r1.commit);
      return r1.nonces;
    });
    const shares = new Map<number, SignShareMsg>();
    signers.forEach((k, j) => shares.set(k.secret.index, signRound2(suite, k, nonces[j]!, commits, message)));
    // Combined under either child's package, node 2's (or node 1's) share is named bad: no signature.
    for (const pkg of [a[0]!.publicKey, b[0]!.publicKey]) expect(errorOf(() => aggregateSignature(suite, pkg, commits, message, shares))).toMatch(/share/i);
  });
});
