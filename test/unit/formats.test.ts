/**
 * Key formats (sdk/formats.ts): every public-key format of every suite is read back by node:crypto
 * and by OpenSSL's command line (`openssl pkey`), to the same key; the private-key encodings of a
 * scalar (PKCS#8, the X25519 private key) give the public key of that scalar; hex takes an optional 0x.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { getSuite, SUITE_IDS, type SuiteId } from '../../core/suites.js';
import { formatPublicKey, normalizeHex, privateKeyEncodings, PUBLIC_KEY_FORMATS } from '../../sdk/formats.js';

const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'tessera-formats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh key of the suite: its scalar (the suite's encoding) and raw public key. */
function keyOf(suite: SuiteId): { scalar: Uint8Array; publicKey: Uint8Array } {
  const s = getSuite(suite);
  const k = s.group.randomScalar();
  return { scalar: s.group.scalarToBytes(k), publicKey: s.publicKeyBytes(s.group.mulBase(k)) };
}

/** The point a raw public key stands for, as the key bytes node:crypto's JWK export shows (x‖y for EC, x for OKP). */
function expectedKeyBytes(suite: SuiteId, raw: Uint8Array): string {
  switch (suite) {
    case 'ed25519':
    case 'hpke-x25519':
      return Buffer.from(raw).toString('hex');
    case 'p256':
    case 'ecdsa-p256':
    case 'hpke-p256':
      return Buffer.from(p256.Point.fromBytes(raw).toBytes(false).subarray(1)).toString('hex');
    case 'secp256k1':
    case 'ecdsa-secp256k1':
      return Buffer.from(secp256k1.Point.fromBytes(raw).toBytes(false).subarray(1)).toString('hex');
    case 'bip340':
      return Buffer.from(secp256k1.Point.fromBytes(Uint8Array.of(0x02, ...raw)).toBytes(false).subarray(1)).toString('hex');
  }
}

function jwkKeyBytes(jwk: Record<string, unknown>): string {
  const b = (v: unknown) => Buffer.from(String(v), 'base64url').toString('hex');
  return jwk.kty === 'EC' ? b(jwk.x) + b(jwk.y) : b(jwk.x);
}

function openssl(args: string[]): Buffer {
  return execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('formatPublicKey', () => {
  it('lists raw, spki, pem and jwk', () => {
    expect([...PUBLIC_KEY_FORMATS]).toEqual(['raw', 'spki', 'pem', 'jwk']);
  });

  for (const suite of SUITE_IDS) {
    it(`${suite}: node:crypto reads spki, pem and jwk as the same key`, () => {
      const { publicKey } = keyOf(suite);
      const raw = formatPublicKey(suite, publicKey, 'raw');
      expect(raw).toBe(Buffer.from(publicKey).toString('hex'));
      const spki = formatPublicKey(suite, publicKey, 'spki') as string;
      const pem = formatPublicKey(suite, publicKey, 'pem') as string;
      const jwk = formatPublicKey(suite, publicKey, 'jwk') as Record<string, unknown>;
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      const fromDer = createPublicKey({ key: Buffer.from(spki, 'hex'), format: 'der', type: 'spki' });
      const fromPem = createPublicKey(pem);
      const fromJwk = createPublicKey({ key: jwk as never, format: 'jwk' });
      for (const k of [fromDer, fromPem, fromJwk]) {
        expect((k.export({ type: 'spki', format: 'der' }) as Buffer).toString('hex')).toBe(spki);
        expect(jwkKeyBytes(k.export({ format: 'jwk' }) as Record<string, unknown>)).toBe(expectedKeyBytes(suite, publicKey));
      }
      expect(jwkKeyBytes(jwk)).toBe(expectedKeyBytes(suite, publicKey));
      const crv = { ed25519: 'Ed25519', 'hpke-x25519': 'X25519', p256: 'P-256', 'hpke-p256': 'P-256', secp256k1: 'secp256k1', bip340: 'secp256k1', 'ecdsa-secp256k1': 'secp256k1', 'ecdsa-p256': 'P-256' }[suite];
      expect(jwk.crv).toBe(crv);
    });

    it.skipIf(!HAS_OPENSSL)(`${suite}: openssl pkey reads the PEM and the DER SPKI as the same key (skipped only if openssl is not installed)`, () => {
      const { publicKey } = keyOf(suite);
      const spki = Buffer.from(formatPublicKey(suite, publicKey, 'spki') as string, 'hex');
      const pemFile = join(dir, `${suite}.pub.pem`);
      const derFile = join(dir, `${suite}.pub.der`);
      writeFileSync(pemFile, formatPublicKey(suite, publicKey, 'pem') as string);
      writeFileSync(derFile, spki);
      openssl(['pkey', '-pubin', '-in', pemFile, '-noout']);
      openssl(['pkey', '-pubin', '-inform', 'DER', '-in', derFile, '-noout']);
      // OpenSSL re-encodes what it parsed: the same SPKI from either input.
      expect(openssl(['pkey', '-pubin', '-in', pemFile, '-outform', 'DER']).toString('hex')).toBe(spki.toString('hex'));
      expect(openssl(['pkey', '-pubin', '-inform', 'DER', '-in', derFile, '-outform', 'DER']).toString('hex')).toBe(spki.toString('hex'));
    });
  }

  it('takes hex with 0x, and refuses bad hex, an invalid point, an unknown suite or format with clear codes', () => {
    const { publicKey } = keyOf('p256');
    const hex = Buffer.from(publicKey).toString('hex');
    expect(formatPublicKey('p256', `0x${hex.toUpperCase()}`, 'spki')).toBe(formatPublicKey('p256', hex, 'spki'));
    expect(() => formatPublicKey('p256', 'zz', 'raw')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => formatPublicKey('p256', '02' + 'ff'.repeat(32), 'pem')).toThrow(expect.objectContaining({ code: 'BAD_POINT' }));
    expect(() => formatPublicKey('rsa', hex, 'pem')).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('unknown suite') }));
    expect(() => formatPublicKey('p256', hex, 'der' as never)).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('format') }));
  });
});

describe('privateKeyEncodings', () => {
  /** What the public key of the PKCS#8 is, compared with formatPublicKey's (for bip340: the same x, either y). */
  function checkPkcs8(suite: SuiteId, pem: string, publicKey: Uint8Array): void {
    const pub = createPublicKey(createPrivateKey(pem));
    const fromPkcs8 = jwkKeyBytes(pub.export({ format: 'jwk' }) as Record<string, unknown>);
    const expected = expectedKeyBytes(suite, publicKey);
    if (suite === 'bip340') expect(fromPkcs8.slice(0, 64)).toBe(expected.slice(0, 64));
    else expect(fromPkcs8).toBe(expected);
    if (HAS_OPENSSL) {
      const f = join(dir, `${suite}.key.pem`);
      writeFileSync(f, pem, { mode: 0o600 });
      const der = openssl(['pkey', '-in', f, '-pubout', '-outform', 'DER']);
      expect(der.toString('hex')).toBe((pub.export({ type: 'spki', format: 'der' }) as Buffer).toString('hex'));
      rmSync(f);
    }
  }

  for (const suite of ['p256', 'hpke-p256', 'secp256k1', 'bip340'] as const) {
    it(`${suite}: PKCS#8 of the scalar has the key's public key (node:crypto${HAS_OPENSSL ? ' and openssl pkey' : '; openssl not installed'})`, () => {
      const { scalar, publicKey } = keyOf(suite);
      const enc = privateKeyEncodings(suite, scalar);
      expect(enc.scalar).toBe(Buffer.from(scalar).toString('hex'));
      expect(enc.pkcs8Pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(enc.note).toBeUndefined();
      checkPkcs8(suite, enc.pkcs8Pem!, publicKey);
    });
  }

  it('hpke-x25519: the X25519 private key of a scalar gives the key\'s public key (noble X25519 and OpenSSL)', () => {
    for (let k = 0; k < 8; k++) {
      const { scalar, publicKey } = keyOf('hpke-x25519');
      const enc = privateKeyEncodings('hpke-x25519', scalar);
      expect(enc.scalar).toBe(Buffer.from(scalar).toString('hex'));
      // All but about 2^-126 of the scalars have one (sdk/formats.ts x25519PrivateKeyFor).
      expect(enc.note).toBeUndefined();
      const sk = Buffer.from(enc.x25519PrivateKey!, 'hex');
      // An independent X25519 (RFC 7748 §5, noble) and OpenSSL (through node:crypto's PKCS#8) agree.
      expect(Buffer.from(x25519.getPublicKey(sk)).toString('hex')).toBe(Buffer.from(publicKey).toString('hex'));
      checkPkcs8('hpke-x25519', enc.pkcs8Pem!, publicKey);
    }
  });

  it('hpke-x25519: a scalar with no X25519 private key (2^255 mod L: neither it nor its negation is a clamped value mod L) gets a note instead', () => {
    const suite = getSuite('hpke-x25519');
    const enc = privateKeyEncodings('hpke-x25519', suite.group.scalarToBytes(suite.group.reduce(1n << 255n)));
    expect(enc.x25519PrivateKey).toBeUndefined();
    expect(enc.pkcs8Pem).toBeUndefined();
    expect(enc.note).toMatch(/no X25519 private key.*clamped/);
  });

  it('ed25519: the scalar and a note (RFC 8032 keys are seeds), no PKCS#8', () => {
    const { scalar } = keyOf('ed25519');
    const enc = privateKeyEncodings('ed25519', scalar);
    expect(enc.scalar).toBe(Buffer.from(scalar).toString('hex'));
    expect(enc.pkcs8Pem).toBeUndefined();
    expect(enc.note).toMatch(/seed/);
  });

  it('refuses a non-canonical scalar and an unknown suite', () => {
    expect(() => privateKeyEncodings('p256', new Uint8Array(32).fill(0xff))).toThrow(expect.objectContaining({ code: 'BAD_SCALAR' }));
    expect(() => privateKeyEncodings('nope', new Uint8Array(32))).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });
});

describe('normalizeHex', () => {
  it('strips an optional 0x/0X and lowercases; refuses odd length and non-hex naming the field', () => {
    expect(normalizeHex('0xABcd', 'message')).toBe('abcd');
    expect(normalizeHex('0X00', 'message')).toBe('00');
    expect(normalizeHex('', 'message')).toBe('');
    expect(normalizeHex('0x', 'message')).toBe('');
    expect(() => normalizeHex('abc', 'enc')).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringMatching(/^enc: expected hex/) }));
    expect(() => normalizeHex('0xzz', 'enc')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => normalizeHex('0x0x00', 'enc')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });
});
