/**
 * HPKE (RFC 9180, base mode) with a KEM key: seal to it, open with threshold decapsulation, and the
 * raw KEM (encapsulate / decapsulate). The sealed form is sdk/seal.ts encodeSealedMessage: it carries
 * `enc` with the ciphertext, so `open` needs nothing else.
 */
import { fromHex, toHex, zeroize } from '../../core/bytes.js';
import { KEM_SUITE_IDS } from './choices.js';
import { checkBinaryStdout, clusterOf, playersOf, print, readInput, writeOutput } from './context.js';
import { KEY_ID, PLAYERS, VERSION, requireSuite } from './keys.js';
import { UsageError, type Args, type CommandSpec, type OptionSpec } from './spec.js';
import { UNSEAL_COMMANDS } from './unseal.js';

const AAD: OptionSpec = { name: 'aad', kind: 'hex', value: 'HEX', help: 'additional authenticated data, hex (the same for seal and open)', default: 'empty' };
const INFO: OptionSpec = { name: 'info', kind: 'hex', value: 'HEX', help: 'the RFC 9180 info string, hex (the same for seal and open)', default: 'empty' };

const bytesOf = (a: Args, name: string): Uint8Array | undefined => {
  const hex = a.string(name);
  return hex === undefined ? undefined : fromHex(hex, `--${name}`);
};

/** --json with the payload on stdout would mix two outputs: it needs --out. */
function checkJsonWithOut(a: Args): void {
  if (a.json && a.string('out') === undefined) throw new UsageError('--json needs --out FILE (the output bytes go to stdout otherwise)', a.command.path.join(' '));
}

export const HPKE_COMMANDS: CommandSpec[] = [
  {
    path: ['seal'],
    summary: 'encrypt to a KEM key (HPKE, RFC 9180): public-key only, no node session; or, with --node I, seal node I',
    uses: 'cluster',
    options: [
      { ...KEY_ID, required: false, help: 'the key to encrypt to (required unless --node)' },
      { name: 'node', kind: 'int', value: 'I', help: 'instead of encrypting: seal running shamir-unseal node I again (as `tessera seal-node --node I`)', min: 1, max: 255 },
      { name: 'in', kind: 'string', value: 'FILE', help: 'the plaintext', default: 'stdin' },
      { name: 'out', kind: 'string', value: 'FILE', help: 'the sealed message (enc and ciphertext; written 0600)', default: 'stdout' },
      AAD,
      INFO,
      { ...VERSION, help: 'the key version to seal to' },
    ],
    details: [
      'Any RFC 9180 sender can seal to a Tessera key instead (HKDF-SHA256, AES-128-GCM, base mode; see docs/verify.md); `tessera open` needs only enc and the ciphertext.',
      'With --json (and --out), prints {keyId, version, out, bytes}; the version is the one to give `open --version` if the key is rotated meanwhile.',
    ],
    examples: ['echo hello | tessera seal --key-id inbox --out hello.sealed', 'tessera open --key-id inbox --in hello.sealed'],
    async run(a) {
      if (a.int('node') !== undefined) {
        // `tessera seal --node I` is the name for sealing a node; `seal-node` is the same command.
        if (a.string('key-id') !== undefined) throw new UsageError('--node (seal a node) and --key-id (encrypt to a key) are different commands; give one', 'seal');
        const sealNode = UNSEAL_COMMANDS.find((c) => c.path.join(' ') === 'seal-node')!;
        return sealNode.run(a);
      }
      if (a.string('key-id') === undefined) throw new UsageError('--key-id is required', 'seal');
      checkJsonWithOut(a);
      checkBinaryStdout(a, 'the sealed message');
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const version = a.int('version');
      requireSuite(await cluster.getKey(keyId, version), KEM_SUITE_IDS, 'seal');
      const { encodeSealedMessage } = await import('../seal.js');
      const plaintext = await readInput(a.string('in'));
      try {
        const info = bytesOf(a, 'info');
        const r = await cluster.seal(keyId, plaintext, bytesOf(a, 'aad'), { ...(info ? { info } : {}), ...(version !== undefined ? { version } : {}) });
        const sealed = encodeSealedMessage(r);
        await writeOutput(a.string('out'), sealed);
        if (a.json) print(true, { keyId, version: r.version, out: a.string('out'), bytes: sealed.length });
      } finally {
        zeroize(plaintext);
      }
      return 0;
    },
  },
  {
    path: ['open'],
    summary: 'decrypt a sealed message with a KEM key: threshold decapsulation, then the RFC 9180 key schedule and Open',
    uses: 'cluster',
    options: [
      KEY_ID,
      { name: 'in', kind: 'string', value: 'FILE', help: 'the sealed message (from `tessera seal`)', default: 'stdin' },
      { name: 'out', kind: 'string', value: 'FILE', help: 'the plaintext (written 0600)', default: 'stdout' },
      AAD,
      INFO,
      PLAYERS,
      { ...VERSION, help: 'the key version it was sealed to' },
    ],
    details: ['The nodes never see the plaintext: each returns its partial decapsulation, wrapped to this process; the SDK combines them and opens the message locally.', 'With --json (and --out), prints {keyId, out, bytes}.'],
    async run(a) {
      checkJsonWithOut(a);
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const version = a.int('version');
      const players = playersOf(a, cluster);
      requireSuite(await cluster.getKey(keyId, version), KEM_SUITE_IDS, 'open');
      const { decodeSealedMessage } = await import('../seal.js');
      const { enc, ciphertext } = decodeSealedMessage(await readInput(a.string('in')));
      const info = bytesOf(a, 'info');
      const plaintext = await cluster.open(keyId, enc, ciphertext, bytesOf(a, 'aad'), {
        ...(info ? { info } : {}),
        ...(version !== undefined ? { version } : {}),
        ...(players ? { players } : {}),
      });
      try {
        await writeOutput(a.string('out'), plaintext);
        if (a.json) print(true, { keyId, out: a.string('out'), bytes: plaintext.length });
      } finally {
        zeroize(plaintext);
      }
      return 0;
    },
  },
  {
    path: ['encapsulate'],
    summary: 'the raw KEM: a fresh shared secret and its enc for a KEM key (RFC 9180 Encap)',
    uses: 'cluster',
    options: [KEY_ID, VERSION],
    details: ['Prints enc and the shared secret, hex. `tessera decapsulate --enc` recovers the same secret through the nodes. To encrypt, prefer `seal`.'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const version = a.int('version');
      requireSuite(await cluster.getKey(keyId, version), KEM_SUITE_IDS, 'encapsulate');
      const r = await cluster.encapsulate(keyId, version !== undefined ? { version } : {});
      try {
        print(a.json, { enc: toHex(r.enc), sharedSecret: toHex(r.sharedSecret), version: r.version });
      } finally {
        zeroize(r.sharedSecret);
      }
      return 0;
    },
  },
  {
    path: ['decapsulate'],
    summary: 'the raw KEM: recover the shared secret of an enc by threshold decapsulation',
    uses: 'cluster',
    options: [KEY_ID, { name: 'enc', kind: 'hex', value: 'HEX', help: "the sender's encapsulated key (enc), hex", required: true }, PLAYERS, VERSION],
    details: ["The enc comes from any RFC 9180 sender (e.g. @hpke/core's sender context `enc`) or from `tessera encapsulate`. To decrypt a whole message, use `open`."],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const keyId = a.string('key-id')!;
      const version = a.int('version');
      const players = playersOf(a, cluster);
      requireSuite(await cluster.getKey(keyId, version), KEM_SUITE_IDS, 'decapsulate');
      const r = await cluster.decapsulate({ keyId, enc: a.string('enc')!, players, version });
      print(a.json, { sharedSecret: r.sharedSecret, version: r.version });
      return 0;
    },
  },
];
