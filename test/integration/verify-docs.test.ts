/**
 * docs/verify.md says what verifies Tessera's signatures with standard tools. This runs its ed25519
 * commands as written (the `tessera` CLI, xxd, sed and OpenSSL's `pkeyutl -verify -rawin`) against a
 * real cluster, and checks the page's other claims: bip340 signatures verify with a BIP-340 verifier,
 * p256 and secp256k1 FROST signatures are 65-byte Schnorr signatures that @noble/curves' RFC 9591
 * verifiers accept and that are no ECDSA signatures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { p256_FROST } from '@noble/curves/nist.js';
import { schnorr, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { formatPublicKey } from '../../sdk/formats.js';
import { hexToBytes, message32, startTestCluster, type TestCluster } from '../helpers/cluster.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOC = readFileSync(join(ROOT, 'docs/verify.md'), 'utf8');

/** The fenced sh block after the `<!-- verify-docs:NAME ... -->` marker. */
function docBlock(name: string): string {
  const at = DOC.indexOf(`<!-- verify-docs:${name}`);
  if (at < 0) throw new Error(`docs/verify.md has no verify-docs:${name} marker`);
  const m = /```sh\n([\s\S]*?)```/.exec(DOC.slice(at));
  if (!m) throw new Error(`no sh block after verify-docs:${name}`);
  return m[1]!;
}

const have = (bin: string, args: string[]) => spawnSync(bin, args, { stdio: 'ignore' }).status === 0;
const tools = have('openssl', ['version']) && have('xxd', ['-v']) && have('bash', ['--version']);

describe('docs/verify.md against a real cluster', () => {
  let tc: TestCluster;
  let work: string;

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    work = mkdtempSync(join(tmpdir(), 'tessera-verify-docs-'));
  }, 90_000);

  afterAll(async () => {
    await tc?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.skipIf(!tools)(`ed25519: the OpenSSL commands of the page verify a Tessera signature, and refuse another message${tools ? '' : ' (skipped: needs the openssl, xxd and bash binaries)'}`, () => {
    // `tessera` on PATH, as for a user: the CLI from source through tsx, in the doc's working directory.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    const tsx = createRequire(join(ROOT, 'package.json')).resolve('tsx');
    writeFileSync(join(bin, 'tessera'), `#!/bin/sh\nexec "${process.execPath}" --import "file://${tsx}" "${join(ROOT, 'sdk/main.ts')}" "$@"\n`);
    chmodSync(join(bin, 'tessera'), 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, TESSERA_CLUSTER: tc.clusterFile };

    const script = docBlock('ed25519');
    expect(script).toMatch(/openssl pkeyutl -verify -pubin -inkey \S+ -rawin/);
    const out = execFileSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: work, env, encoding: 'utf8', timeout: 120_000 });
    expect(out).toContain('Signature Verified Successfully');
    // node:crypto agrees (the page's second snippet).
    const key = createPublicKey(readFileSync(join(work, 'demo-ed.pub.pem')));
    expect(nodeVerify(null, readFileSync(join(work, 'message.txt')), key, readFileSync(join(work, 'message.sig')))).toBe(true);

    // The same openssl line on another message fails.
    writeFileSync(join(work, 'message.txt'), 'hello, tessera!');
    const opensslLine = script.split('\n').find((l) => l.startsWith('openssl pkeyutl -verify'))!;
    const refused = spawnSync('bash', ['-c', opensslLine], { cwd: work, env, encoding: 'utf8' });
    expect(refused.status).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain('Signature Verification Failure');
  }, 180_000);

  it('bip340: a BIP-340 verifier (@noble/curves schnorr.verify) accepts the signature under the x-only key', async () => {
    const k = await tc.cluster.keygen({ suite: 'bip340', keyId: 'docs-bip340' });
    const message = message32('verify.md bip340');
    const { signature } = await tc.cluster.sign({ keyId: 'docs-bip340', message });
    expect(hexToBytes(k.publicKey)).toHaveLength(32);
    expect(hexToBytes(signature)).toHaveLength(64);
    expect(schnorr.verify(hexToBytes(signature), message, hexToBytes(k.publicKey))).toBe(true);
  }, 60_000);

  it('p256 and secp256k1: 65-byte Schnorr signatures (R || z) that @noble/curves p256_FROST / secp256k1_FROST verify, and that are not ECDSA', async () => {
    for (const [suite, frost] of [
      ['p256', p256_FROST],
      ['secp256k1', secp256k1_FROST],
    ] as const) {
      const k = await tc.cluster.keygen({ suite, keyId: `docs-${suite}` });
      const message = new TextEncoder().encode(`verify.md ${suite}`);
      const { signature } = await tc.cluster.sign({ keyId: `docs-${suite}`, message });
      const sig = hexToBytes(signature);
      expect(sig, `${suite}: R (33) || z (32)`).toHaveLength(65);
      expect([0x02, 0x03]).toContain(sig[0]);
      expect(frost.verify(sig, message, hexToBytes(k.publicKey)), `${suite}: RFC 9591 verify`).toBe(true);
      // node:crypto reads the public key (PEM), but its ECDSA verify does not accept a Schnorr signature.
      const key = createPublicKey(formatPublicKey(suite, k.publicKey, 'pem') as string);
      let ecdsa: boolean;
      try {
        ecdsa = nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig.subarray(1));
      } catch {
        ecdsa = false;
      }
      expect(ecdsa, `${suite}: not an ECDSA signature`).toBe(false);
    }
  }, 120_000);
});
