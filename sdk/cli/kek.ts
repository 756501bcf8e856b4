/**
 * Commands run on a node's host, about its key-encryption key (issue 15): `tessera kek init-pkcs11` makes the
 * node's KEK inside its PKCS#11 token (node/store/kek-pkcs11.ts createPkcs11Kek), as the node's own config
 * file names it, read by the node's own config loader (so the PIN comes from where the node takes it).
 */
import { print } from './context.js';
import { UsageError, type CommandSpec } from './spec.js';

export const KEK_COMMANDS: CommandSpec[] = [
  {
    path: ['kek', 'init-pkcs11'],
    summary: "create a node's KEK in its PKCS#11 token: a non-extractable AES-256 key, as the node's config names it",
    uses: 'offline',
    options: [
      {
        name: 'config',
        kind: 'string',
        value: 'FILE',
        help: "the node's config file, with kekProvider {kind: 'pkcs11', module, tokenLabel, keyLabel?, pinFile?}; the PIN is read from pinFile or TESSERA_PKCS11_PIN",
        required: true,
      },
    ],
    details: [
      'Run on the node host, before the first start of a node whose kekProvider is pkcs11, with the environment the node runs with (e.g. SOFTHSM2_CONF for SoftHSM2). The token must exist (made with its own tool, e.g. softhsm2-util --init-token). The key is generated inside the token (CKM_AES_KEY_GEN) as a private, sensitive, never-extractable token object that can only encrypt and decrypt, labelled keyLabel (default tessera-kek-node-<index>) with a random 8-byte CKA_ID; it is refused if the token already holds a key with that label. Prints the KEK id (p11-<CKA_ID hex>) the node stores beside every record; never the PIN.',
    ],
    examples: ['tessera kek init-pkcs11 --config /etc/tessera/node-1.json'],
    async run(a) {
      const file = a.string('config')!;
      const { loadNodeConfig } = await import('../../node/config.js');
      const config = loadNodeConfig({ file });
      if (config.kek.kind !== 'pkcs11') {
        throw new UsageError(`${file}: the node's KEK provider is ${config.kek.kind}, not pkcs11 (kekProvider {kind: 'pkcs11', ...})`, 'kek init-pkcs11');
      }
      const { createPkcs11Kek } = await import('../../node/store/kek-pkcs11.js');
      const kekId = await createPkcs11Kek(config.kek, config.kek.keyLabel);
      print(a.json, { node: config.index, module: config.kek.module, token: config.kek.tokenLabel, keyLabel: config.kek.keyLabel, kekId });
      return 0;
    },
  },
];
