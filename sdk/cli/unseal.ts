/**
 * Sealed nodes (issue 15, the shamir-unseal KEK provider; node/sealed.ts, sdk/unseal.ts): initialise a
 * node's KEK as K-of-N operator shares, submit shares until it unseals, seal it again, read its state.
 * One node at a time (--node I), through its API with the admin API key of the cluster file.
 */
import { join } from 'node:path';
import { clusterOf, print } from './context.js';
import { UsageError, type Args, type CommandSpec } from './spec.js';

const NODE = { name: 'node', kind: 'int', value: 'I', help: 'the node', min: 1, max: 255, required: true } as const;

/** The unseal client of --node I, from the cluster file's entry for it (its URL, admin API key, CA). */
export async function unsealClientOf(a: Args) {
  const { file } = await clusterOf(a);
  const index = a.int('node');
  const entry = file.nodes.find((n) => n.index === index);
  if (!entry) throw new UsageError(`--node: the cluster file has no node ${String(index)} (nodes ${file.nodes.map((n) => n.index).join(',')})`, a.command.path.join(' '));
  const { UnsealClient } = await import('../unseal.js');
  return new UnsealClient({ url: entry.url, apiKey: entry.apiKey, index: entry.index, ...(entry.ca !== undefined ? { ca: entry.ca } : {}) });
}

/** --operator-key FILE ... as hex public keys (one per operator when given). */
export async function operatorKeysOf(a: Args, operators: number | undefined, command: string): Promise<string[]> {
  const keyFiles = a.strings('operator-key');
  if (keyFiles.length !== 0 && operators !== undefined && keyFiles.length !== operators) throw new UsageError(`--operator-key: give one per operator (${operators}), got ${keyFiles.length}`, command);
  const { readWrappingPublicKey } = await import('../keyfiles.js');
  const { toHex } = await import('../../core/bytes.js');
  return keyFiles.map((f) => toHex(readWrappingPublicKey(f).publicKey));
}

/** Write the shares of an init or KEK-rotation prepare answer to `out`, one file per operator (mode 0600, never overwriting). */
export async function writeShareFiles(out: string, answer: Parameters<typeof import('../unseal.js').unsealShareFiles>[0]): Promise<string[]> {
  const { unsealShareFiles, writeUnsealShareFile } = await import('../unseal.js');
  const files: string[] = [];
  for (const f of unsealShareFiles(answer)) {
    const path = join(out, `share-${f.shareIndex}.${f.wrapped ? 'wrapped' : 'json'}`);
    writeUnsealShareFile(path, f);
    files.push(path);
  }
  return files;
}

export const UNSEAL_COMMANDS: CommandSpec[] = [
  {
    path: ['unseal', 'init'],
    summary: "initialise a shamir-unseal node: its KEK made and split into K-of-N operator shares, written once to --out",
    uses: 'cluster',
    options: [
      NODE,
      { name: 'threshold', kind: 'int', value: 'K', help: 'how many operator shares unseal the node', min: 2, max: 255, required: true },
      { name: 'operators', kind: 'int', value: 'N', help: 'how many operator shares to make', min: 2, max: 255, required: true },
      {
        name: 'operator-key',
        kind: 'string',
        value: 'FILE',
        multiple: true,
        help: "operator i's wrapping public key (`tessera wrapping-key generate`, FILE.pub), given N times in operator order: share i is sealed to it",
      },
      { name: 'out', kind: 'string', value: 'DIR', help: 'the directory to write the share files to (share-<i>.wrapped, or share-<i>.json in plain; mode 0600, never overwritten)', required: true },
    ],
    details: [
      "For a node whose config names kekProvider {kind: 'shamir-unseal'} and that has no data dir yet. The node makes a random 256-bit KEK, splits it K-of-N (GF(256) Shamir), creates its data dir and identity under it, keeps only unseal.json (K, N, one check value per share, the KEK's id) and answers the shares once; it keeps no share. The node stays sealed. Give the printed identityPublicKey to the cluster's membership.",
      "Without --operator-key the shares are written in plain: hand each file to its operator and delete it. With the keys, each share opens only with its operator's key pair file.",
    ],
    examples: ['tessera unseal init --node 3 --threshold 2 --operators 3 --operator-key alice.key.pub --operator-key bob.key.pub --operator-key carol.key.pub --out shares/'],
    async run(a) {
      const threshold = a.int('threshold')!;
      const operators = a.int('operators')!;
      if (threshold > operators) throw new UsageError(`--threshold ${threshold} is more than --operators ${operators}`, 'unseal init');
      const operatorKeys = await operatorKeysOf(a, operators, 'unseal init');
      const client = await unsealClientOf(a);
      const init = await client.init({ threshold, operators, ...(operatorKeys.length ? { operatorKeys } : {}) });
      const files = await writeShareFiles(a.string('out')!, init);
      print(a.json, { node: init.node, threshold: init.threshold, operators: init.operators, keyCheckValue: init.keyCheckValue, identityPublicKey: init.identityPublicKey, sealedToOperatorKeys: operatorKeys.length > 0, files });
      return 0;
    },
  },
  {
    path: ['unseal'],
    summary: 'submit one operator share to sealed node I; the K-th valid share unseals it',
    uses: 'cluster',
    options: [
      NODE,
      { name: 'share', kind: 'string', value: 'FILE', help: 'the share file (`unseal init` wrote it)', required: true },
      { name: 'wrapping-key', kind: 'string', value: 'FILE', help: "the operator's wrapping key pair file (mode 0600), for a share sealed to it; it is opened here, the node sees only the share" },
    ],
    details: [
      'A share that is not the one made as that share of that node (tampered, of another node or another initialisation) is refused and named by its check value; a share already given since the node last sealed is refused. Every attempt is audited. After the K-th share this waits until the node serves (the full node binds the same port).',
    ],
    examples: ['tessera unseal --node 3 --share share-2.wrapped --wrapping-key bob.key'],
    async run(a) {
      const { readUnsealShareFile } = await import('../unseal.js');
      const file = readUnsealShareFile(a.string('share')!);
      if (file.node !== a.int('node')) throw new UsageError(`--share: ${a.string('share')} is a share of node ${file.node}, not node ${String(a.int('node'))}`, 'unseal');
      const keyFile = a.string('wrapping-key');
      const { readWrappingKeyPair } = await import('../keyfiles.js');
      const { zeroize } = await import('../../core/bytes.js');
      const pair = keyFile !== undefined ? readWrappingKeyPair(keyFile) : undefined;
      const client = await unsealClientOf(a);
      let r;
      try {
        r = await client.unseal(file, pair);
      } finally {
        zeroize(pair?.privateKey);
      }
      const final = r.state === 'unsealing' ? await client.waitFor('unsealed') : r;
      print(a.json, { node: r.node, accepted: r.accepted, state: final.state, sealed: final.sealed, progress: `${r.progress}/${r.threshold ?? '?'}` });
      return 0;
    },
  },
  {
    path: ['unseal', 'status'],
    summary: 'whether node I is sealed, and how many operator shares are in',
    uses: 'cluster',
    options: [NODE],
    async run(a) {
      const s = await (await unsealClientOf(a)).status();
      print(a.json, a.json ? { ...s } : { node: s.node, provider: s.provider, state: s.state, progress: s.threshold !== undefined ? `${s.progress}/${s.threshold}` : undefined, operators: s.operators, keyCheckValue: s.keyCheckValue, lastError: s.lastError });
      return 0;
    },
  },
  {
    // Not `tessera seal`: that name is HPKE's (sdk/cli/hpke.ts, encrypt to a key).
    path: ['seal-node'],
    summary: 'seal running node I again: it stops serving and wipes its KEK until K operators unseal it',
    uses: 'cluster',
    options: [NODE],
    examples: ['tessera seal-node --node 3'],
    async run(a) {
      const client = await unsealClientOf(a);
      await client.seal();
      const s = await client.waitFor('sealed');
      print(a.json, { node: s.node, state: s.state, sealed: s.sealed, threshold: s.threshold });
      return 0;
    },
  },
];
