/**
 * Offline commands (no cluster): wrapping keys, and bundles to and from an external key store.
 */
import { randomBytes } from 'node:crypto';
import { toHex, zeroize } from '../../core/bytes.js';
import type { KeyBundleJson, WrapKem } from '../client.js';
import { NOT_ECDSA_NOTE, SUITE_HELP, SUITE_IDS, WRAP_KEM_IDS } from './choices.js';
import { print, readJsonFile, writeJsonFile } from './context.js';
import { UsageError, type CommandSpec } from './spec.js';

export const OFFLINE_COMMANDS: CommandSpec[] = [
  {
    path: ['wrapping-key', 'generate'],
    summary: 'make a post-quantum wrapping key pair: FILE (0600) and FILE.pub',
    uses: 'offline',
    options: [
      { name: 'out', kind: 'string', value: 'FILE', help: 'the private key file to create (never overwritten); the public key goes to FILE.pub', required: true },
      { name: 'kem', kind: 'choice', value: 'KEM', choices: WRAP_KEM_IDS, help: 'the wrapping KEM', default: 'ml-kem-768' },
    ],
    examples: ['tessera wrapping-key generate --out ext.key --kem x-wing'],
    async run(a) {
      const kem = (a.string('kem') ?? 'ml-kem-768') as WrapKem;
      const out = a.string('out')!;
      const { generateWrappingKeyPair } = await import('../client.js');
      const { writeWrappingKeyPair } = await import('../keyfiles.js');
      const pair = await generateWrappingKeyPair(kem);
      try {
        const { publicPath, fingerprint } = writeWrappingKeyPair(out, pair);
        print(a.json, { kem, privateKeyFile: out, publicKeyFile: publicPath, fingerprint, ...(a.json ? { publicKey: toHex(pair.publicKey) } : {}) });
      } finally {
        zeroize(pair.privateKey);
      }
      return 0;
    },
  },
  {
    path: ['split-and-wrap'],
    summary: "split an existing private key into shares wrapped to a cluster's import keys (a bundle for `import`)",
    uses: 'offline',
    options: [
      { name: 'suite', kind: 'choice', value: 'SUITE', choices: SUITE_IDS, help: "the key's suite (what each makes: see the list above)", required: true },
      { name: 'private-key-file', kind: 'string', value: 'FILE', help: 'the private key: 32 raw bytes or 64 hex characters (an ed25519 seed, a scalar otherwise)', required: true },
      { name: 'import-keys', kind: 'string', value: 'FILE', help: "the destination cluster's import-keys file (`import-key --json`)", required: true },
      { name: 'out', kind: 'string', value: 'BUNDLE', help: 'the bundle file to write (0600)', required: true },
      { name: 'key-id', kind: 'string', value: 'ID', help: 'the key id in the bundle', default: 'a random id' },
      { name: 'threshold', kind: 'int', value: 'T', help: 'how many nodes it takes to use the key', default: 'a majority of the nodes', min: 2 },
    ],
    details: [SUITE_HELP, NOT_ECDSA_NOTE],
    async run(a) {
      const suite = a.string('suite')! as (typeof SUITE_IDS)[number];
      const { splitAndWrap } = await import('../client.js');
      const { readImportKeysFile, readPrivateKeyFile } = await import('../keyfiles.js');
      const importKeys = readImportKeysFile(a.string('import-keys')!);
      const parties = importKeys.length;
      if (parties < 2) throw new UsageError(`--import-keys lists ${parties} node; a cluster has at least 2`, 'split-and-wrap');
      const threshold = a.int('threshold') ?? Math.floor(parties / 2) + 1;
      if (threshold > parties) throw new UsageError(`--threshold must be 2..${parties} (the node count), got ${threshold}`, 'split-and-wrap');
      const out = a.string('out')!;
      const privateKey = readPrivateKeyFile(a.string('private-key-file')!);
      let bundle;
      try {
        bundle = await splitAndWrap(privateKey, suite, threshold, parties, importKeys, { keyId: a.string('key-id') ?? `key-${toHex(randomBytes(8))}` });
      } finally {
        zeroize(privateKey);
      }
      writeJsonFile(out, bundle);
      print(a.json, { keyId: bundle.keyId, suite, threshold, parties, publicKey: bundle.publicKey, out });
      return 0;
    },
  },
  {
    path: ['combine'],
    summary: "unwrap an exported bundle's shares and combine them into the key's secret scalar (and its standard encodings)",
    uses: 'offline',
    options: [
      { name: 'in', kind: 'string', value: 'BUNDLE', help: 'the bundle (`export --wrapping-key`)', required: true },
      { name: 'wrapping-private-key', kind: 'string', value: 'FILE', multiple: true, required: true, help: 'a wrapping key pair file (0600); once per distinct wrapping key used' },
    ],
    details: [
      "Prints `scalar` (the secret scalar, hex, in the suite's scalar encoding: little-endian for ed25519 and X25519) and, where a standard private-key encoding exists, that too: `pkcs8Pem` for p256, secp256k1 and bip340, `x25519PrivateKey` for hpke-x25519 when one exists; `note` says why one is missing. An ed25519 scalar is not an RFC 8032 private key (that is a seed, which a threshold key never had): node:crypto cannot load it.",
      'The output is the whole secret key: handle it as such.',
    ],
    async run(a) {
      const { unwrapAndCombine } = await import('../client.js');
      const { privateKeyEncodings } = await import('../formats.js');
      const { readWrappingKeyPair } = await import('../keyfiles.js');
      const bundle = readJsonFile(a.string('in')!);
      const pairs = a.strings('wrapping-private-key').map(readWrappingKeyPair);
      try {
        const { scalar, publicKey } = await unwrapAndCombine(bundle, pairs);
        try {
          // unwrapAndCombine parsed the bundle, so its suite field is a known suite.
          const encodings = privateKeyEncodings((bundle as KeyBundleJson).suite, scalar);
          print(a.json, { ...encodings, publicKey: toHex(publicKey) });
        } finally {
          zeroize(scalar);
        }
      } finally {
        for (const p of pairs) zeroize(p.privateKey);
      }
      return 0;
    },
  },
];
