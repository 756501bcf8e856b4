/**
 * The CLI commands of issue 11 as a user runs them (a child process per command) against a real
 * 3-node cluster: keys list, audit show (with --since), apikey list / revoke, public-key in every
 * format node:crypto reads, seal / open through files and through stdin/stdout (and opening what an
 * independent @hpke/core sender sealed), encapsulate then decapsulate, combine's scalar and PKCS#8,
 * hex with 0x, the exit statuses (2 for a bad command line named by its flag, 1 for a failed
 * operation), and commands with node 1 down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPublicKey } from '../../sdk/formats.js';
import { encodeSealedMessage } from '../../sdk/seal.js';
import { NodeClient } from '../../sdk/client.js';
import { jsonOf, tessera, type CliResult } from '../helpers/cli.js';
import { bytesToHex, hexToBytes, hpkeSeal, rejectionOf, startTestCluster, type TestCluster } from '../helpers/cluster.js';

/** Run CLI calls `width` at a time (each is a fresh node process; the machine is shared). */
async function inBatches<T>(tasks: (() => Promise<T>)[], width = 3): Promise<T[]> {
  const out: T[] = [];
  for (let k = 0; k < tasks.length; k += width) out.push(...(await Promise.all(tasks.slice(k, k + width).map((t) => t()))));
  return out;
}

/** A failure as promised: `code`, nothing on stdout, one stderr line without a stack. */
function expectFailure(r: CliResult, code: 1 | 2, pattern: RegExp, what: string): void {
  expect(r.code, `${what}: exit status (stderr: ${r.stderr})`).toBe(code);
  expect(r.stdout, `${what}: stdout`).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, `${what}: one stderr line, got:\n${r.stderr}`).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(lines[0]).not.toMatch(/^\s*at\s|body\/|must NOT|instancePath/);
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

describe('tessera CLI commands against a 3-node cluster', () => {
  let tc: TestCluster;
  let env: Record<string, string>;
  let work: string;
  const cli = (args: string[], input?: Uint8Array) => tessera(args, env, 90_000, input);

  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, threshold: 2 });
    env = { TESSERA_CLUSTER: tc.clusterFile };
    work = await mkdtemp(join(tmpdir(), 'tessera-cli-cmd-'));
  }, 90_000);

  afterAll(async () => {
    await tc?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('keys list: every version of every key (retired ones too), --state filters; keygen --json prints no progress when stderr is not a terminal', async () => {
    const made = await cli(['keygen', '--suite', 'ed25519', '--key-id', 'list-a', '--json']);
    expect(jsonOf(made)).toMatchObject({ keyId: 'list-a', version: 1 });
    expect(made.stderr).toBe('');
    await tc.cluster.keygen({ suite: 'p256', keyId: 'list-b' });
    await tc.cluster.rotate({ keyId: 'list-b' });

    const [all, retired, text] = await inBatches([() => cli(['keys', 'list', '--json']), () => cli(['keys', 'list', '--state', 'retired', '--json']), () => cli(['keys', 'list'])]);
    const mine = (r: CliResult) => (jsonOf(r).keys as Record<string, unknown>[]).filter((k) => String(k.keyId).startsWith('list-'));
    expect(mine(all).map((k) => [k.keyId, k.version, k.suite, k.state])).toEqual([
      ['list-a', 1, 'ed25519', 'active'],
      ['list-b', 1, 'p256', 'retired'],
      ['list-b', 2, 'p256', 'active'],
    ]);
    for (const k of mine(all)) {
      expect(k).toMatchObject({ threshold: 2, parties: 3, exportable: false });
      expect(k.publicKey).toMatch(/^[0-9a-f]+$/);
      expect(k).not.toHaveProperty('publicPackage');
    }
    expect(mine(retired).map((k) => [k.keyId, k.version])).toEqual([['list-b', 1]]);
    expect((jsonOf(retired).keys as { state: string }[]).every((k) => k.state === 'retired')).toBe(true);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^list-a {2}v1 {2}ed25519 {2}active {2}2-of-3 {2}[0-9a-f]{64} {2}\(FROST Ed25519 \(RFC 9591\), verifies as RFC 8032 Ed25519\)$/m);
    expect(text.stdout).toMatch(/^list-b {2}v1 {2}p256 {2}retired .* {2}\(FROST Schnorr \(RFC 9591\), not ECDSA\)$/m);
    for (const k of mine(all)) expect(k.scheme).toBe(k.suite === 'p256' ? 'FROST Schnorr (RFC 9591), not ECDSA' : 'FROST Ed25519 (RFC 9591), verifies as RFC 8032 Ed25519');
  }, 180_000);

  it('audit show: seq, time, operation, key, outcome and principal of each entry (no hashes, no secrets); --since SEQ shows only later entries; every node without --node', async () => {
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'audited' });
    const first = jsonOf(await cli(['audit', 'show', '--node', '1', '--json']));
    expect(first.node).toBe(1);
    const entries = first.entries as Record<string, unknown>[];
    expect(entries.length).toBeGreaterThan(3);
    const allowed = new Set(['seq', 'time', 'operation', 'keyId', 'version', 'outcome', 'tenant', 'actor', 'severity', 'reason', 'sessionId']);
    entries.forEach((e, k) => {
      for (const f of Object.keys(e)) expect(allowed.has(f), `field ${f}`).toBe(true);
      expect(e.seq).toBe(k + 1);
      expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(typeof e.operation).toBe('string');
      expect(['started', 'ok', 'denied', 'failed']).toContain(e.outcome);
    });
    expect(entries).toContainEqual(expect.objectContaining({ operation: 'keygen', keyId: 'audited', version: 1, outcome: 'ok', tenant: 'default' }));

    const since = (entries[entries.length - 3]!.seq as number);
    const [later, everyNode, text] = await inBatches([
      () => cli(['audit', 'show', '--node', '1', '--since', String(since), '--json']),
      () => cli(['audit', 'show', '--json']),
      () => cli(['audit', 'show', '--node', '1', '--since', String(since)]),
    ]);
    const laterEntries = jsonOf(later).entries as Record<string, unknown>[];
    expect(laterEntries.length).toBeGreaterThanOrEqual(2);
    expect(laterEntries.every((e) => (e.seq as number) > since)).toBe(true);
    // The entries after `since` that the first call saw are shown again, unchanged.
    expect(laterEntries.slice(0, 2)).toEqual(entries.slice(-2));
    expect((jsonOf(everyNode).nodes as { node: number; entries: unknown[] }[]).map((n) => n.node)).toEqual([1, 2, 3]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^node 1: \\d+ entries after seq ${since}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^\\s*${since + 1}  \\d{4}-`, 'm'));
    expect(text.stdout).not.toMatch(new RegExp(`^\\s*${since}  `, 'm'));
  }, 180_000);

  it('apikey list shows ids, never keys; apikey revoke --id revokes on the node that has it, which then refuses the key; an unknown id exits 1', async () => {
    await tc.cluster.createTenant('acme');
    const keys = await tc.cluster.createApiKeys('acme');
    const node2 = keys.find((k) => k.node === 2)!;
    const listed = await cli(['apikey', 'list', '--tenant', 'acme', '--json']);
    const nodes = jsonOf(listed).nodes as { node: number; apiKeys: { id: string; tenant: string; role: string }[] }[];
    expect(nodes.map((n) => n.node)).toEqual([1, 2, 3]);
    for (const k of keys) expect(nodes[k.node - 1]!.apiKeys).toContainEqual(expect.objectContaining({ id: k.id, tenant: 'acme', role: 'tenant' }));
    for (const k of keys) expect(listed.stdout).not.toContain(k.apiKey);

    // Before: the tenant's key works on node 2.
    const asAcme = new NodeClient({ url: tc.dev.cluster.nodes[1]!.url, apiKey: node2.apiKey, index: 2 });
    expect(await asAcme.listKeys()).toEqual([]);
    const revoked = jsonOf(await cli(['apikey', 'revoke', '--id', node2.id, '--json']));
    expect(revoked.revoked).toEqual([expect.objectContaining({ node: 2, id: node2.id, tenant: 'acme' })]);
    expect((await rejectionOf(asAcme.listKeys())).status).toBe(401);
    // The other nodes' keys of the tenant still work.
    const node1 = keys.find((k) => k.node === 1)!;
    expect(await new NodeClient({ url: tc.dev.cluster.nodes[0]!.url, apiKey: node1.apiKey, index: 1 }).listKeys()).toEqual([]);

    const [after, unknown] = await inBatches([() => cli(['apikey', 'list', '--tenant', 'acme', '--node', '2', '--json']), () => cli(['apikey', 'revoke', '--id', 'no-such-key-id', '--node', '1'])]);
    expect((jsonOf(after).nodes as { apiKeys: { id: string; revokedAt?: number }[] }[])[0]!.apiKeys.find((k) => k.id === node2.id)?.revokedAt).toEqual(expect.any(Number));
    expectFailure(unknown, 1, /^tessera: NOT_FOUND: no API key no-such-key-id on node 1$/, 'revoke an unknown id');
  }, 180_000);

  it('public-key --format raw|spki|pem|jwk: node:crypto reads the PEM and the JWK of every suite as the same key, and it is the raw key', async () => {
    // Every format of every suite through node:crypto and openssl is sdk/formats.ts's unit test
    // (test/unit/formats.test.ts, per suite); here the CLI's side: the formats it prints (PEM as bare text,
    // a JWK as an object in --json) for one suite of each key type (an Ed25519 OKP, an X25519 OKP, an EC
    // point; secp256k1, bip340 and hpke-p256 go through the same CLI code, each CLI call is a process
    // start), spki and raw for one.
    const suites = ['ed25519', 'p256', 'hpke-x25519'] as const;
    const raw = new Map<string, string>();
    for (const suite of suites) raw.set(suite, (await tc.cluster.keygen({ suite, keyId: `fmt-${suite}` })).publicKey);
    const results = await inBatches([
      ...suites.flatMap((suite) => [() => cli(['public-key', '--key-id', `fmt-${suite}`, '--format', 'pem']), () => cli(['public-key', '--key-id', `fmt-${suite}`, '--format', 'jwk', '--json'])]),
      () => cli(['public-key', '--key-id', 'fmt-ed25519', '--format', 'spki', '--json']),
      () => cli(['public-key', '--key-id', 'fmt-ed25519', '--format', 'raw', '--json']),
    ]);
    suites.forEach((suite, k) => {
      const [pem, jwk] = results.slice(2 * k, 2 * k + 2) as [CliResult, CliResult];
      expect(pem.code, pem.stderr).toBe(0);
      expect(pem.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
      const jwkOut = jsonOf(jwk);
      expect(jwkOut).toMatchObject({ keyId: `fmt-${suite}`, version: 1, suite, format: 'jwk' });
      expect(typeof jwkOut.publicKey).toBe('object'); // a JWK is an object in --json, not a string
      const fromPem = createPublicKey(pem.stdout);
      expect(createPublicKey({ key: jwkOut.publicKey as Record<string, string>, format: 'jwk' }).equals(fromPem), `${suite}: PEM and JWK are one key`).toBe(true);
      // ... and that key is the cluster's: its x coordinate is the raw key's.
      const rawBytes = hexToBytes(raw.get(suite)!);
      const rawX = suite === 'ed25519' || suite === 'hpke-x25519' ? rawBytes : rawBytes.subarray(1, 33);
      expect(fromPem.export({ format: 'jwk' }).x, `${suite}: x of the key`).toBe(b64url(rawX));
    });
    const [spki, rawOut] = results.slice(2 * suites.length) as [CliResult, CliResult];
    const spkiKey = createPublicKey({ key: Buffer.from(jsonOf(spki).publicKey as string, 'hex'), format: 'der', type: 'spki' });
    expect(spkiKey.equals(createPublicKey(results[0]!.stdout))).toBe(true);
    expect(jsonOf(rawOut)).toEqual({ keyId: 'fmt-ed25519', version: 1, suite: 'ed25519', scheme: 'FROST Ed25519 (RFC 9591), verifies as RFC 8032 Ed25519', publicKey: raw.get('ed25519'), format: 'raw' });
  }, 300_000);

  it('seal then open through files (with --aad 0x...), and through stdin/stdout; a wrong aad fails with exit 1', async () => {
    await tc.cluster.keygen({ suite: 'hpke-x25519', keyId: 'inbox' });
    const plaintext = new Uint8Array(randomBytes(1500));
    const plainFile = join(work, 'plain.bin');
    const sealedFile = join(work, 'msg.sealed');
    const openedFile = join(work, 'opened.bin');
    await writeFile(plainFile, plaintext);

    const sealed = jsonOf(await cli(['seal', '--key-id', 'inbox', '--in', plainFile, '--out', sealedFile, '--aad', '0x0A0b', '--json']));
    expect(sealed).toEqual({ keyId: 'inbox', version: 1, out: sealedFile, bytes: (await readFile(sealedFile)).length });
    expect((await readFile(sealedFile)).subarray(0, 4).toString()).toBe('TSSL');
    const [opened, wrongAad] = await inBatches([
      () => cli(['open', '--key-id', 'inbox', '--in', sealedFile, '--out', openedFile, '--aad', '0a0b']),
      () => cli(['open', '--key-id', 'inbox', '--in', sealedFile, '--aad', '0a0c']),
    ]);
    expect(opened.code, opened.stderr).toBe(0);
    expect(bytesToHex(await readFile(openedFile))).toBe(bytesToHex(plaintext));
    expect((await stat(openedFile)).mode & 0o777).toBe(0o600);
    expectFailure(wrongAad, 1, /^tessera: [A-Z_]+: /, 'open with another aad');

    // stdin → seal → stdout → open (stdin) → stdout
    const sealedOut = await cli(['seal', '--key-id', 'inbox'], plaintext);
    expect(sealedOut.code, sealedOut.stderr).toBe(0);
    const openedOut = await cli(['open', '--key-id', 'inbox'], sealedOut.stdoutBytes);
    expect(openedOut.code, openedOut.stderr).toBe(0);
    expect(bytesToHex(openedOut.stdoutBytes)).toBe(bytesToHex(plaintext));
  }, 180_000);

  it('open reads what an independent RFC 9180 sender (@hpke/core) sealed, for hpke-x25519 and hpke-p256, with --info and --aad', async () => {
    const p256 = await tc.cluster.keygen({ suite: 'hpke-p256', keyId: 'inbox-p256' });
    const x25519 = await tc.cluster.getKey('inbox');
    const results = await inBatches(
      [
        ['hpke-x25519', 'inbox', x25519.publicKey],
        ['hpke-p256', 'inbox-p256', p256.publicKey],
      ].map(([suite, keyId, publicKey]) => async () => {
        const plaintext = new TextEncoder().encode(`from @hpke/core to ${suite}`);
        const m = await hpkeSeal(suite!, hexToBytes(publicKey!), plaintext);
        const r = await cli(['open', '--key-id', keyId!, '--info', bytesToHex(m.info), '--aad', `0x${bytesToHex(m.aad)}`], encodeSealedMessage(m));
        return { r, plaintext };
      }),
    );
    for (const { r, plaintext } of results) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(new TextDecoder().decode(plaintext));
    }
  }, 180_000);

  it('encapsulate, then decapsulate its enc (given with 0x) through the nodes: the same shared secret', async () => {
    const enc = jsonOf(await cli(['encapsulate', '--key-id', 'inbox', '--json']));
    expect(Object.keys(enc).sort()).toEqual(['enc', 'sharedSecret', 'version']);
    expect(enc.sharedSecret).toMatch(/^[0-9a-f]{64}$/);
    const dec = jsonOf(await cli(['decapsulate', '--key-id', 'inbox', '--enc', `0x${(enc.enc as string).toUpperCase()}`, '--players', '2,3', '--json']));
    expect(dec).toEqual({ sharedSecret: enc.sharedSecret, version: enc.version });
  }, 120_000);

  it('combine prints the scalar (never a field called privateKey) and, for p256, a PKCS#8 key whose public key is the cluster key', async () => {
    const key = await tc.cluster.keygen({ suite: 'p256', keyId: 'movable-p256', exportable: true });
    const wrap = join(work, 'wrap.key');
    const bundle = join(work, 'movable.bundle.json');
    jsonOf(await cli(['wrapping-key', 'generate', '--out', wrap, '--json']));
    jsonOf(await cli(['export', '--key-id', 'movable-p256', '--wrapping-key', `${wrap}.pub`, '--out', bundle, '--json']));
    const combined = jsonOf(await cli(['combine', '--in', bundle, '--wrapping-private-key', wrap, '--json']));
    expect(combined).not.toHaveProperty('privateKey');
    expect(combined.scalar).toMatch(/^[0-9a-f]{64}$/);
    expect(combined.publicKey).toBe(key.publicKey);
    const derived = createPublicKey(createPrivateKey(combined.pkcs8Pem as string)).export({ type: 'spki', format: 'der' }).toString('hex');
    expect(derived).toBe(formatPublicKey('p256', key.publicKey, 'spki'));
  }, 180_000);

  it('exit statuses against the cluster: 2 for a bad command line (named by flag, nothing sent), 1 for a failed operation', async () => {
    await tc.cluster.keygen({ suite: 'ed25519', keyId: 'exit-ed' });
    const cases: [string, string[], 1 | 2, RegExp][] = [
      ['one player', ['sign', '--key-id', 'exit-ed', '--message', '00', '--players', '1'], 2, /--players: give at least 2 nodes/],
      ['a player beyond the cluster', ['sign', '--key-id', 'exit-ed', '--message', '00', '--players', '1,5'], 2, /--players: the cluster has nodes 1\.\.3, got 5/],
      ['--node beyond the cluster', ['audit', 'show', '--node', '4'], 2, /--node must be 1\.\.3/],
      ['--json without --out for seal', ['seal', '--key-id', 'inbox', '--json'], 2, /--json needs --out/],
      ['unknown key', ['sign', '--key-id', 'no-such-key', '--message', '00'], 1, /^tessera: NOT_FOUND: .*no-such-key/],
      ['encapsulate with a signing key', ['encapsulate', '--key-id', 'exit-ed'], 1, /ed25519 key and cannot encapsulate/],
    ];
    const results = await inBatches(cases.map(([, args]) => () => cli(args)));
    cases.forEach(([what, , code, pattern], k) => expectFailure(results[k]!, code, pattern, what));

    // A signature that does not verify: exit 1, and the output says so.
    const bad = await cli(['verify', '--key-id', 'exit-ed', '--message', '0x00', '--signature', '00'.repeat(64), '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ keyId: 'exit-ed', valid: false });
  }, 180_000);

  // Last: it stops node 1.
  it('with node 1 down, sign picks live nodes, verify asks the next node, keys list still answers', async () => {
    await tc.dev.kill(1, 'SIGKILL');
    const message = '0x' + bytesToHex(new TextEncoder().encode('node 1 is down'));
    const signed = jsonOf(await cli(['sign', '--key-id', 'exit-ed', '--message', message, '--json']));
    const [verified, listed] = await inBatches([
      () => cli(['verify', '--key-id', 'exit-ed', '--message', message, '--signature', signed.signature as string, '--json']),
      () => cli(['keys', 'list', '--json']),
    ]);
    expect(jsonOf(verified)).toMatchObject({ keyId: 'exit-ed', valid: true });
    expect((jsonOf(listed).keys as { keyId: string }[]).map((k) => k.keyId)).toContain('exit-ed');
  }, 180_000);
});
