/**
 * Key commands: make, list, show, use (sign / verify) and look after keys (refresh, repair, rotate,
 * lifecycle), and move them between clusters (import-key, export, import).
 */
import { fromHex, toHex } from '../../core/bytes.js';
import { isContiguous, partyIndices } from '../../core/committee.js';
import type { KeyInfo, KeyState } from '../client.js';
import type { PublicKeyFormat } from '../formats.js';
import { TesseraClientError } from '../http.js';
import type { ImportKeysFileJson } from '../keyfiles.js';
import { formatKeysReport } from '../inventory.js';
import { ECDSA_SUITE_IDS, KEY_STATES, NOT_ECDSA_NOTE, PUBLIC_KEY_FORMAT_IDS, SIGNING_SUITE_IDS, SUITE_HELP, SUITE_IDS } from './choices.js';

/** `--prehashed`: threshold ECDSA keys sign (or are checked against) the given digest itself. */
const PREHASHED: OptionSpec = { name: 'prehashed', kind: 'flag', help: 'ecdsa-secp256k1 / ecdsa-p256 keys: the message is already the 16..64-byte digest (e.g. Keccak-256); default: SHA-256 of the message is signed' };
import { clusterOf, nodesText, playersOf, print, readJsonFile, withProgress, writeJsonFile } from './context.js';
import { UsageError, type CommandSpec, type OptionSpec } from './spec.js';


export const KEY_ID: OptionSpec = { name: 'key-id', kind: 'string', value: 'ID', help: 'the key', required: true };
export const VERSION: OptionSpec = { name: 'version', kind: 'int', value: 'V', help: 'the key version', default: 'the newest active version', min: 1 };
export const PLAYERS: OptionSpec = {
  name: 'players',
  kind: 'players',
  value: 'LIST',
  help: "the nodes to use, comma-separated (e.g. 1,3): at least the key's threshold",
  default: 'live nodes, chosen by the SDK',
};
/** A non-hardened BIP-32 path (checked by the SDK, core/derive.ts: hardened steps are refused). */
const PATH: OptionSpec = {
  name: 'path',
  kind: 'string',
  value: 'PATH',
  help: 'a child key: a non-hardened BIP-32 path such as m/0/5 (secp256k1, bip340 and ed25519 keys)',
  default: 'the key itself',
};
const THRESHOLD: OptionSpec = { name: 'threshold', kind: 'int', value: 'T', help: 'how many nodes it takes to use the key', default: "the cluster file's threshold", min: 2 };

/** The key's suite must be one of `suites` (the node would refuse too, less clearly). */
export function requireSuite(info: KeyInfo, suites: readonly string[], what: string): void {
  if (!suites.includes(info.suite)) throw new TesseraClientError('BAD_INPUT', `key ${info.keyId} is a ${info.suite} key and cannot ${what}`);
}

/** The nodes holding shares of a key version (core/committee.ts: 1..parties unless resharing moved it). */
function committeeOf(k: KeyInfo): number[] {
  return [...partyIndices(k.publicPackage)];
}

/** "2-of-3", or "2-of-4 [1,2,4,5]" when the committee is not nodes 1..n (after a reshare). */
function thresholdOf(k: KeyInfo): string {
  const nodes = committeeOf(k);
  return `${k.threshold}-of-${k.parties}${isContiguous(nodes) ? '' : ` [${nodes.join(',')}]`}`;
}

/** What the CLI shows of a key (not its public package: that is for the SDK). */
function keySummary(k: KeyInfo, o: { state?: boolean } = {}): Record<string, unknown> {
  return {
    keyId: k.keyId,
    version: k.version,
    suite: k.suite,
    scheme: k.scheme,
    publicKey: k.publicKey,
    ...(o.state
      ? { state: k.state, threshold: k.threshold, parties: k.parties, nodes: committeeOf(k), epoch: k.epoch, exportable: k.exportable, createdAt: new Date(k.createdAt).toISOString() }
      : {}),
    ...(k.rotation ? { rotation: k.rotation } : {}),
  };
}

export const KEY_COMMANDS: CommandSpec[] = [
  {
    path: ['keygen'],
    summary: 'make a new key by distributed key generation (no node ever holds the whole key)',
    uses: 'cluster',
    options: [
      { name: 'suite', kind: 'choice', value: 'SUITE', choices: SUITE_IDS, help: 'a signing or KEM suite (what each makes: see the list above)', required: true },
      { name: 'key-id', kind: 'string', value: 'ID', help: "the new key's id", default: 'a random id' },
      THRESHOLD,
      { name: 'exportable', kind: 'flag', help: 'allow `tessera export` of this key (fixed at creation)' },
      { name: 'rotation-period', kind: 'duration', value: 'DURATION', help: 'rotate the key this long after each version is made (e.g. 30d); the nodes do it' },
    ],
    details: [
      SUITE_HELP,
      NOT_ECDSA_NOTE,
      'secp256k1, bip340, ecdsa-secp256k1 and ed25519 keys get a chain code at keygen, made from the DKG transcript, for non-hardened child keys (sign --path, public-key --path). The --json output has `scheme`: what the suite signs.',
    ],
    examples: ['tessera keygen --suite ed25519 --key-id demo --json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const suite = a.string('suite')!;
      const threshold = a.int('threshold');
      if (threshold !== undefined && threshold > cluster.size) throw new UsageError(`--threshold ${threshold} is above the node count ${cluster.size}`, 'keygen');
      const k = await withProgress(`keygen ${suite}`, () =>
        cluster.keygen({ suite, keyId: a.string('key-id'), threshold, exportable: a.flag('exportable'), rotationPeriodMs: a.int('rotation-period') }),
      );
      print(a.json, keySummary(k));
      return 0;
    },
  },
  {
    path: ['keys', 'list'],
    summary: 'list every version of every key of your tenant',
    uses: 'cluster',
    options: [{ name: 'state', kind: 'choice', value: 'STATE', choices: KEY_STATES, help: 'only versions in this state' }],
    details: [
      'Text output has one line per key version: key id, version, suite, state, threshold-of-parties (with the nodes in brackets when they are not 1..n, after a reshare), public key (hex), and in parentheses what the suite signs (its scheme). --json prints {"keys": [...]}, ordered by key id then version; `nodes` is the committee.',
      NOT_ECDSA_NOTE,
    ],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const state = a.string('state') as KeyState | undefined;
      const keys: KeyInfo[] = await cluster.listKeys(state ? { state } : {});
      if (a.json) print(true, { keys: keys.map((k) => keySummary(k, { state: true })) });
      else if (keys.length === 0) process.stdout.write(state ? `no ${state} keys\n` : 'no keys\n');
      else for (const k of keys) process.stdout.write(`${k.keyId}  v${k.version}  ${k.suite}  ${k.state}  ${thresholdOf(k)}  ${k.publicKey}  (${k.scheme})\n`);
      return 0;
    },
  },
  {
    path: ['keys', 'report'],
    summary: 'the quantum-readiness inventory: every key, what protects it, what would make it post-quantum',
    uses: 'cluster',
    options: [],
    details: [
      'One line per key: tenant/key id, suite, versions with their states, age, rotation status, whether it is exportable, and how each protection stands against a quantum computer: the key itself (every suite today is elliptic-curve: classical), its shares in transit between nodes (ML-KEM-768 and ML-DSA-65: PQ), on export (wrapped to ML-KEM-768 or X-Wing: PQ; "-" when not exportable) and at rest (as each node reports in GET /v1/node atRest: AES-256-GCM under a 256-bit KEK is PQ). Then what would have to change for each key to be post-quantum end to end, and the SDK-to-node link (TLS, negotiated outside Tessera).',
      "With an admin API key every tenant's keys are listed; with a tenant key, that tenant's only. --json prints the whole report: {generatedAt, tenants, keys: [{tenant, keyId, suite, scheme, use, versions, currentVersion, createdAt, ageMs, currentVersionAgeMs, rotation, exportable, protection: {key, transit, export, atRest}, postQuantumEndToEnd, toChange}], nodes, client, summary}.",
    ],
    examples: ['tessera keys report', 'tessera keys report --json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const report = await cluster.keysReport();
      if (a.json) print(true, report as unknown as Record<string, unknown>);
      else process.stdout.write(formatKeysReport(report));
      return 0;
    },
  },
  {
    path: ['keys', 'info'],
    summary: "show one key version's record: state, threshold, the nodes holding its shares (its committee), epoch",
    uses: 'cluster',
    options: [KEY_ID, VERSION],
    details: [
      '`nodes` is the key\'s committee: the nodes that hold its shares (1..n for a key made here; any set after `tessera reshare`). Signing, decapsulation and refresh use these nodes only. The record is read from the first live node that holds it.',
      NOT_ECDSA_NOTE,
    ],
    examples: ['tessera keys info --key-id demo --json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const k = await cluster.getKey(a.string('key-id')!, a.int('version'));
      print(a.json, { ...keySummary(k, { state: true }), ...(a.json ? {} : { nodes: committeeOf(k).join(',') }) });
      return 0;
    },
  },
  {
    path: ['public-key'],
    summary: "show a key's public key, raw or as SPKI, PEM or JWK",
    uses: 'cluster',
    options: [
      KEY_ID,
      VERSION,
      {
        name: 'format',
        kind: 'choice',
        value: 'FORMAT',
        choices: PUBLIC_KEY_FORMAT_IDS,
        help: "raw (the suite's own encoding, hex), spki (DER SubjectPublicKeyInfo, hex), pem, or jwk",
        default: 'raw',
      },
      PATH,
    ],
    details: [
      'With --format and without --json, only the key is printed (PEM text, hex, or the JWK as JSON), ready to redirect into a file. With --json, the key in that format is the `publicKey` field (a JWK as an object). A suite with no standard encoding in a format (e.g. bip340 x-only keys in SPKI) fails with UNSUPPORTED_FORMAT.',
      'docs/verify.md shows how to check signatures with OpenSSL and node:crypto using these keys.',
      'With --path, the child key of that non-hardened BIP-32 path (computed from the key\'s public record: group key and chain code), with its chain code and, for secp256k1 and bip340, its xpub. ed25519 child keys are additive derivations on the raw scalar, not RFC 8032 keys from a seed.',
      NOT_ECDSA_NOTE,
    ],
    examples: ['tessera public-key --key-id demo --format pem > demo.pub.pem', 'tessera public-key --key-id wallet --path m/0/5 --json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const path = a.string('path');
      const k = await cluster.getKey(a.string('key-id')!, a.int('version'));
      const child = path !== undefined ? await cluster.childKey(k.keyId, { path, version: k.version }) : undefined;
      const format = a.string('format') as PublicKeyFormat | undefined;
      const raw = child ? child.publicKey : k.publicKey;
      const publicKey = format === undefined || format === 'raw' ? raw : (await import('../formats.js')).formatPublicKey(k.suite, raw, format);
      if (format !== undefined && !a.json) {
        const text = typeof publicKey === 'string' ? publicKey : JSON.stringify(publicKey);
        process.stdout.write(text.endsWith('\n') ? text : text + '\n');
        return 0;
      }
      // state only when the version is not active (the output of an active key equals keygen's).
      print(a.json, {
        keyId: k.keyId,
        version: k.version,
        suite: k.suite,
        scheme: k.scheme,
        publicKey,
        ...(format !== undefined ? { format } : {}),
        ...(child ? { path: child.path, chainCode: child.chainCode, ...(child.xpub !== undefined ? { xpub: child.xpub } : {}) } : {}),
        ...(k.state !== 'active' ? { state: k.state } : {}),
        ...(k.rotation ? { rotation: k.rotation } : {}),
      });
      return 0;
    },
  },
  {
    path: ['sign'],
    summary: 'sign a message with a signing key (FROST or threshold ECDSA)',
    uses: 'cluster',
    options: [KEY_ID, { name: 'message', kind: 'hex', value: 'HEX', help: 'the message, hex; an optional 0x is accepted', required: true }, PLAYERS, VERSION, PATH, PREHASHED],
    details: [
      'ed25519 signatures are standard RFC 8032 signatures; bip340 signatures are BIP-340 Schnorr signatures; p256 and secp256k1 signatures are FROST Schnorr signatures (RFC 9591), not ECDSA. See docs/verify.md.',
      NOT_ECDSA_NOTE,
      'ecdsa-secp256k1 and ecdsa-p256 keys make standard ECDSA signatures (DKLs23 threshold ECDSA) over SHA-256 of the message, or over the message itself with --prehashed: `signature` is the compact r||s (64 bytes, low-s), `der` the DER form OpenSSL reads, and `recoveryId` the SEC 1 recovery id (Ethereum v = 27 + recoveryId).',
      'With --path, the signature is under the child key of that non-hardened BIP-32 path (see public-key --path): every node adds the public tweak to its share; no secret is exchanged. Hardened steps (0\' or 0h) are refused: they need the parent private key, which no node holds.',
    ],
    examples: ['tessera sign --key-id demo --message 68656c6c6f --json', 'tessera sign --key-id wallet --message 68656c6c6f --path m/0/5 --json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const version = a.int('version');
      const players = playersOf(a, cluster);
      requireSuite(await cluster.getKey(keyId, version), [...SIGNING_SUITE_IDS, ...ECDSA_SUITE_IDS], 'sign');
      const path = a.string('path');
      const prehashed = a.flag('prehashed') ? { prehashed: true } : {};
      const r = await cluster.sign({ keyId, message: a.string('message')!, players, version, ...(path !== undefined ? { path } : {}), ...prehashed });
      print(a.json, {
        signature: r.signature,
        ...(r.der !== undefined ? { der: r.der, recoveryId: r.recoveryId } : {}),
        ...(a.json ? { keyId } : {}),
        version: r.version,
        ...(r.derivationPath !== undefined ? { path: r.derivationPath } : {}),
      });
      return 0;
    },
  },
  {
    path: ['verify'],
    summary: 'check a signature against a key (asks the first node that answers and holds it)',
    uses: 'cluster',
    options: [
      KEY_ID,
      { name: 'message', kind: 'hex', value: 'HEX', help: 'the signed message, hex', required: true },
      { name: 'signature', kind: 'hex', value: 'HEX', help: 'the signature, hex', required: true },
      VERSION,
      PATH,
      PREHASHED,
    ],
    details: [
      'With --path, the signature is checked here against the child key of that path (public-key --path), computed from the key\'s public record.',
      'ecdsa-secp256k1 and ecdsa-p256 signatures may be given compact (r||s) or DER.',
    ],
    exitNote: '1 also when the signature is not valid (the output says valid: false)',
    async run(a) {
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const request = { message: a.string('message')!, signature: a.string('signature')!, version: a.int('version'), ...(a.flag('prehashed') ? { prehashed: true } : {}) };
      const path = a.string('path');
      if (path !== undefined) {
        const child = await cluster.childKey(keyId, { path, ...(request.version !== undefined ? { version: request.version } : {}) });
        const { derivableSuite } = await import('../../core/derive.js');
        const suite = derivableSuite(child.suite);
        const [signature, message, publicKey] = [fromHex(request.signature, 'signature'), fromHex(request.message, 'message'), fromHex(child.publicKey, 'publicKey')];
        const valid = suite.kind === 'ecdsa' ? suite.verify(signature, message, publicKey, { prehashed: request.prehashed === true }) : suite.verify(signature, message, publicKey);
        print(a.json, { keyId, version: child.version, path: child.path, valid });
        return valid ? 0 : 1;
      }
      // Any node holding the key can check a signature: a node that is down or does not answer is
      // skipped, and so is one outside the key's committee (after a reshare it holds no record: NOT_FOUND).
      let r: Awaited<ReturnType<(typeof cluster.nodes)[number]['verify']>> | undefined;
      for (const [k, node] of cluster.nodes.entries()) {
        try {
          r = await node.verify(keyId, request);
          break;
        } catch (e) {
          const code = (e as TesseraClientError).code;
          if ((code !== 'UNAVAILABLE' && code !== 'NODE_TIMEOUT' && code !== 'NOT_FOUND') || k === cluster.nodes.length - 1) throw e;
        }
      }
      print(a.json, { keyId, version: r!.version, valid: r!.valid });
      return r!.valid ? 0 : 1;
    },
  },
  {
    path: ['refresh'],
    summary: 'give every node new shares of a key version; the public key stays the same',
    uses: 'cluster',
    options: [KEY_ID, VERSION],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const r = await cluster.refresh({ keyId: a.string('key-id')!, version: a.int('version') });
      print(a.json, { keyId: r.keyId, version: r.version, epoch: r.epoch });
      return 0;
    },
  },
  {
    path: ['repair'],
    summary: 'finish interrupted commits of a key from the certificates the nodes hold',
    uses: 'cluster',
    options: [{ ...KEY_ID }],
    exitNote: '1 also when a node could not be repaired or was restored from a backup (the output says which)',
    async run(a) {
      const { cluster } = await clusterOf(a);
      const r = await cluster.repair(a.string('key-id')!);
      if (a.json) print(true, r as unknown as Record<string, unknown>);
      else {
        const lines = [`key ${r.keyId}: ${r.certificates.length} certificate(s) held by the nodes`];
        for (const n of r.nodes) {
          for (const x of n.applied) lines.push(`node ${n.node}: ${x.outcome} ${x.operation} of version ${x.version} (session ${x.sessionId})`);
          if (n.finding) lines.push(`node ${n.node}: ${n.finding}`);
          for (const p of n.problems) lines.push(`node ${n.node}: cannot repair: ${p}`);
          for (const d of n.dropped) lines.push(`node ${n.node}: dropped the staged change of session ${d} (not every node staged it; this node never released its vote)`);
          if (n.waiting) lines.push(`node ${n.node}: ${n.waiting.operation} of version ${n.waiting.version} still staged (session ${n.waiting.sessionId})${n.waiting.released ? ': its vote was released; only its certificate can finish it' : ''}`);
          if (!n.applied.length && !n.dropped.length && !n.problems.length && !n.waiting && !n.restored) lines.push(`node ${n.node}: up to date`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      }
      return r.nodes.some((n) => n.problems.length > 0 || n.restored) ? 1 : 0;
    },
  },
  {
    path: ['rotate'],
    summary: 'make a new version of a key by DKG; the old version is retired (--all: every active key, an emergency rotation)',
    uses: 'cluster',
    options: [
      { ...KEY_ID, required: false, help: 'the key (or --all)' },
      { ...VERSION, help: 'the version to rotate' },
      { name: 'all', kind: 'flag', help: 'rotate the newest active version of every key (every tenant the cluster file\'s API keys can list, or --tenant)' },
      { name: 'tenant', kind: 'string', value: 'T', help: 'with --all: only this tenant\'s keys (admin API keys)', default: 'every tenant' },
      { name: 'state', kind: 'string', value: 'FILE', help: 'with --all: the run file that lets a rerun resume', default: 'the cluster file\'s path + .rotate-all.json (.rotate-all.T.json with --tenant)' },
      { name: 'concurrency', kind: 'int', value: 'N', help: 'with --all: keys rotated at once', default: '2', min: 1, max: 64 },
    ],
    details: [
      'With --all (issue 15: emergency rotation), every key\'s newest active version is rotated as `tessera rotate --key-id` rotates one (every operator\'s hook approves each), and one progress line per key goes to stderr ("tessera rotate: [k/N] KEY vV: rotated to vW"), also when stderr is not a terminal. Skipped, and reported: keys with no active version, and older active versions beside a newer one. The report (stdout; --json: one object {runId, resumed, total, rotated: [{tenant, keyId, fromVersion, toVersion, by}], skipped, failed, runFile}) lists every key.',
      'Killed midway, the same command resumes: the run file holds the plan written before the first rotation, and a key counts as done when the nodes hold a version above the one it had then, so no key is rotated twice. The file is removed when every key is done; with failures it stays (exit 1) and a rerun retries them.',
    ],
    exitNote: 'with --all: 1 when a key could not be rotated (after the report)',
    async run(a) {
      const keyId = a.string('key-id');
      const all = a.flag('all');
      const usage = (message: string) => new UsageError(message, 'rotate');
      if (all && keyId !== undefined) throw usage('--all and --key-id: give one (--all rotates every key)');
      if (!all) {
        if (keyId === undefined) throw usage('--key-id is required (or --all)');
        const given = [a.string('tenant') !== undefined && 'tenant', a.string('state') !== undefined && 'state', a.int('concurrency') !== undefined && 'concurrency'].filter(Boolean);
        if (given.length) throw usage(`--${given[0]} goes with --all`);
        const { cluster } = await clusterOf(a);
        const r = await withProgress(`rotate ${keyId}`, () => cluster.rotate({ keyId, version: a.int('version') }));
        print(a.json, { keyId: r.keyId, version: r.version, previousVersion: r.previousVersion, publicKey: r.publicKey });
        return 0;
      }
      if (a.int('version') !== undefined) throw usage('--version goes with --key-id (--all rotates each key\'s newest active version)');
      const tenant = a.string('tenant');
      // The nodes' id rule (core/session.ts ID_RE, loaded only here); it also keeps the default run file's name in its directory.
      if (tenant !== undefined && !(await import('../../core/session.js')).ID_RE.test(tenant)) throw usage('--tenant: expected a tenant name (1-128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit)');
      const ctx = await clusterOf(a);
      const statePath = a.string('state') ?? `${ctx.path}.rotate-all${tenant !== undefined ? `.${tenant}` : ''}.json`;
      const r = await ctx.cluster.rotateAll({
        ...(tenant !== undefined ? { tenant } : {}),
        statePath,
        concurrency: a.int('concurrency') ?? 2,
        // Plain lines, also without a terminal: an emergency run is followed and logged (as cluster changes are).
        onProgress: (line) => process.stderr.write(`tessera rotate: ${line}\n`),
      });
      const name = (k: { tenant: string | null; keyId: string }) => (k.tenant === null ? k.keyId : `${k.tenant}/${k.keyId}`);
      if (a.json) print(true, r as unknown as Record<string, unknown>);
      else {
        const earlier = r.rotated.filter((k) => k.by === 'earlier').length;
        print(false, {
          run: `${r.runId}${r.resumed ? ' (resumed)' : ''}`,
          keys: `${r.total} planned: ${r.rotated.length} rotated${earlier ? ` (${earlier} by an earlier run)` : ''}, ${r.failed.length} failed; ${r.skipped.length} skipped`,
          runFile: r.runFile,
        });
        const lines = [
          ...r.rotated.map((k) => `rotated ${name(k)} v${k.fromVersion} -> v${k.toVersion}${k.by === 'earlier' ? ' (earlier)' : ''}`),
          ...r.skipped.map((k) => `skipped ${name(k)} v${k.version} (${k.state}): ${k.reason}`),
          ...r.failed.map((k) => `failed ${name(k)} v${k.version}: ${k.reason}`),
        ];
        if (lines.length) process.stdout.write(lines.join('\n') + '\n');
      }
      if (r.failed.length) {
        const f = r.failed[0]!;
        throw new TesseraClientError('ROTATE_INCOMPLETE', `${r.failed.length} key(s) were not rotated (first: ${name(f)} v${f.version}: ${f.reason}); run the same command again to retry them (run file ${statePath})`);
      }
      return 0;
    },
  },
  {
    path: ['reshare'],
    summary: 'move a key version to other nodes and/or another threshold; the public key stays the same',
    uses: 'cluster',
    options: [
      KEY_ID,
      { name: 'threshold', kind: 'int', value: 'T', help: 'the new threshold: how many of the new nodes it takes to use the key', required: true, min: 2, max: 255 },
      { name: 'nodes', kind: 'players', value: 'LIST', help: 'the new committee: the nodes that will hold shares, comma-separated (e.g. 1,2,4,5)', required: true },
      {
        name: 'dealers',
        kind: 'players',
        value: 'LIST',
        help: "the current holders that deal their shares, comma-separated: at least the key's threshold of them",
        default: 'the first t holders that answer',
      },
      { ...VERSION, help: 'the version to reshare' },
    ],
    details: [
      'The dealers, old holders of the key, each deal Feldman-committed sub-shares of their shares to the new nodes, which check them against the old verifying shares; every new node then holds a share of the same key under the new threshold. The old and new nodes may overlap or not. The session runs on the dealers and the new nodes together, and every one of their operators approves it (each SDK\'s policy hook sees the request). Its result is committed with every player\'s vote.',
      'Afterwards the old shares are dead: the epoch goes up and old and new shares never combine. Old holders outside the new committee erase their shares; those that were not in the session are handed the commit certificate, and one that cannot be reached is listed (it erases when `tessera repair --key-id ID` reaches it).',
      'Text output: the new threshold and nodes, the epoch, the unchanged public key, and what each old holder outside the session answered. --json prints one object with `handoff`: [{node, outcome} or {node, error}].',
    ],
    examples: ['tessera reshare --key-id demo --threshold 3 --nodes 1,2,4,5 --json', 'tessera reshare --key-id demo --threshold 2 --nodes 4,5 --dealers 1,3'],
    async run(a) {
      const keyId = a.string('key-id')!;
      const threshold = a.int('threshold')!;
      const nodes = a.players('nodes')!;
      const dealers = a.players('dealers');
      if (threshold > nodes.length) throw new UsageError(`--threshold ${threshold} is above the number of --nodes (${nodes.length})`, 'reshare');
      const { cluster } = await clusterOf(a);
      for (const [flag, list] of [['nodes', nodes], ['dealers', dealers ?? []]] as const) {
        const beyond = list.find((i) => !cluster.indices.includes(i));
        if (beyond !== undefined) throw new UsageError(`--${flag}: the cluster has nodes ${nodesText(cluster)}, got ${beyond}`, 'reshare');
      }
      const r = await withProgress(`reshare ${keyId}`, (step) =>
        cluster.reshare(keyId, { threshold, nodes, ...(dealers ? { dealers } : {}), ...(a.int('version') !== undefined ? { version: a.int('version') } : {}) }, step),
      );
      if (a.json) {
        const { key: _key, ...result } = r;
        print(true, result as unknown as Record<string, unknown>);
      } else {
        print(false, {
          keyId: r.keyId,
          version: r.version,
          threshold: `${r.threshold}-of-${r.nodes.length}`,
          nodes: r.nodes.join(','),
          epoch: r.epoch,
          previous: `${r.previous.threshold}-of-${r.previous.nodes.length} on nodes ${r.previous.nodes.join(',')} (epoch ${r.previous.epoch})`,
          dealers: r.dealers.join(','),
          publicKey: r.publicKey,
        });
        for (const h of r.handoff) {
          process.stdout.write(
            h.error === undefined
              ? `node ${h.node}: ${h.outcome}\n`
              : `node ${h.node}: not reached (${h.error}); it erases its old share when \`tessera repair --key-id ${r.keyId}\` reaches it\n`,
          );
        }
      }
      return 0;
    },
  },
  ...(
    [
      ['retire', 'retired', 'stop using a version for new operations (it can still verify and decapsulate)'],
      ['archive', 'archived', 'put a version away: it is refused for every operation until activated'],
      ['activate', 'active', 'bring a retired or archived version back into use'],
      ['destroy', 'destroyed', "delete a version's shares on every node (cannot be undone)"],
    ] as const
  ).map(
    ([name, state, summary]): CommandSpec => ({
      path: [name],
      summary,
      uses: 'cluster',
      options: [KEY_ID, { name: 'version', kind: 'int', value: 'V', help: `the version to ${name} (${name} acts on one version)`, required: true, min: 1 }],
      async run(a) {
        const { cluster } = await clusterOf(a);
        const k = await cluster.setState({ keyId: a.string('key-id')!, version: a.int('version')!, state });
        print(a.json, { keyId: k.keyId, version: k.version, state: k.state, publicKey: k.publicKey });
        return 0;
      },
    }),
  ),
  {
    path: ['import-key'],
    summary: "show the nodes' import public keys (with --json: an import-keys file for export and split-and-wrap)",
    uses: 'cluster',
    options: [{ name: 'node', kind: 'int', value: 'I', help: 'only this node', default: 'every node', min: 1 }],
    details: [
      "The import-keys file (--json) names this cluster's threshold and node count with every node's import key: `tessera export --import-keys FILE` on a cluster of another size deals the key for this one. With --node it lists that node's key only, without the size.",
    ],
    examples: ['tessera import-key --json --cluster b/cluster.json > b-import-keys.json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const node = a.int('node');
      if (node !== undefined && !cluster.indices.includes(node)) throw new UsageError(`--node must be ${nodesText(cluster)}, got ${node}`, 'import-key');
      const { wrappingKeyFingerprint } = await import('../client.js');
      const whole = await cluster.importKeysFile();
      const keys = whole.importKeys.filter((k) => node === undefined || k.index === node);
      const file: ImportKeysFileJson = node === undefined ? whole : { importKeys: keys };
      if (a.json) process.stdout.write(JSON.stringify(file) + '\n');
      else {
        if (node === undefined) process.stdout.write(`threshold ${whole.threshold} of ${whole.parties} nodes\n`);
        for (const k of keys) process.stdout.write(`node ${k.index}: ${k.kem} fingerprint ${toHex(wrappingKeyFingerprint(fromHex(k.publicKey, 'importPublicKey')))}\n`);
      }
      return 0;
    },
  },
  {
    path: ['export'],
    summary: "export an exportable key's shares, each wrapped to a post-quantum wrapping key, into a bundle file",
    uses: 'cluster',
    options: [
      KEY_ID,
      { name: 'wrapping-key', kind: 'string', value: 'FILE', multiple: true, help: 'a wrapping public key file (FILE.pub of `wrapping-key generate`): once for every share, or once per share' },
      { name: 'import-keys', kind: 'string', value: 'FILE', help: 'an import-keys file of the destination cluster (`import-key --json`)' },
      { name: 'out', kind: 'string', value: 'BUNDLE', help: 'the bundle file to write (0600)', required: true },
      VERSION,
    ],
    details: [
      'Give either --wrapping-key (to an external store, then `combine`) or --import-keys (to another cluster, then `import` there).',
      "When the import-keys file names a threshold and node count other than the key's (a destination cluster of another size), every node deals its re-randomised share to the destination's nodes with Feldman commitments, each sub-share sealed to one destination node's import key: a version 2 bundle that imports only on a cluster of that size. A file without a size (older versions) means the key's own size.",
    ],
    async run(a) {
      const files = a.strings('wrapping-key');
      const importKeysFile = a.string('import-keys');
      if ((files.length === 0) === (importKeysFile === undefined)) {
        throw new UsageError('give the wrapping keys as --wrapping-key FILE (one for all shares, or one per share) or as --import-keys FILE, not both', 'export');
      }
      const { readImportKeys, readWrappingPublicKey } = await import('../keyfiles.js');
      // An import-keys file may name the destination's size; wrapping-key files never do (an external store).
      const { keys, destination } = importKeysFile !== undefined ? readImportKeys(importKeysFile) : { keys: files.map((f) => readWrappingPublicKey(f).publicKey), destination: undefined };
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const out = a.string('out')!;
      const options = { keyId, wrappingKeys: keys, version: a.int('version') };
      const bundle = await withProgress(`export ${keyId}`, () => (destination ? cluster.exportKey({ ...options, destination }) : cluster.exportKey(options)));
      writeJsonFile(out, bundle);
      print(a.json, { keyId, version: bundle.keyVersion, publicKey: bundle.publicKey, threshold: bundle.threshold, parties: bundle.parties, out });
      return 0;
    },
  },
  {
    path: ['import'],
    summary: 'import a key from a bundle made for this cluster (by `export --import-keys` on a cluster of any size, or `split-and-wrap`)',
    uses: 'cluster',
    options: [
      { name: 'in', kind: 'string', value: 'BUNDLE', help: 'the bundle file', required: true },
      { name: 'key-id', kind: 'string', value: 'ID', help: 'the key id here', default: "the bundle's key id" },
      { name: 'exportable', kind: 'flag', help: 'allow exporting it again from this cluster' },
      { ...THRESHOLD, default: "the bundle's threshold" },
    ],
    async run(a) {
      const bundle = readJsonFile(a.string('in')!);
      const { cluster } = await clusterOf(a);
      const k = await withProgress('import', () => cluster.importKey({ bundle, keyId: a.string('key-id'), exportable: a.flag('exportable'), threshold: a.int('threshold') }));
      print(a.json, { keyId: k.keyId, version: k.version, suite: k.suite, publicKey: k.publicKey, exportable: k.exportable });
      return 0;
    },
  },
];
