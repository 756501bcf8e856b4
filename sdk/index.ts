/**
 * The public SDK: the package's main export (`import { loadCluster, Cluster } from 'tessera-threshold'`,
 * compiled to dist/sdk/index.js with its types in dist/sdk/index.d.ts).
 *
 * - client.ts: Cluster and NodeClient (keygen, sign, decapsulate, seal/open, lifecycle, admin calls),
 *   key bundles and wrapping keys, offline audit-log verification, TesseraClientError.
 * - cluster-file.ts: readClusterFile / loadCluster (the cluster.json that `tessera dev` writes).
 * - formats.ts: public keys as raw, SPKI, PEM or JWK; standard private-key encodings of a scalar.
 * - seal.ts: RFC 9180 sealing to a public key, and the sealed-message encoding.
 * - presign.ts: one-round signing from presignatures (combineSignatureShares for separate operators).
 * - keyfiles.ts: the wrapping-key, import-keys and private-key files the CLI reads and writes.
 * - membership.ts: the cluster file after a membership change (Cluster.addNode, removeNode, replaceNode).
 * - unseal.ts: sealed nodes (shamir-unseal KEK provider): init, unseal, seal, status; operator share files.
 */
export * from './client.js';
export * from './cluster-file.js';
export * from './formats.js';
export * from './seal.js';
export * from './presign.js';
// Membership changes (issue 13): the cluster file after a change, and the types of Cluster's membership calls.
export { clusterFileAfterChange, writeClusterFileAtomic, type KeyMoveChange, type MemberSpec, type MembershipReport } from './membership.js';
export {
  readImportKeysFile,
  readPrivateKeyFile,
  readWrappingKeyPair,
  readWrappingPublicKey,
  writeWrappingKeyPair,
  type ImportKeyJson,
  type ImportKeysFileJson,
  type WrappingKeyFileJson,
} from './keyfiles.js';
// Sealed nodes (issue 15, shamir-unseal KEK provider): one node's unseal routes and the operator share files.
export {
  UnsealClient,
  UNSEAL_SHARE_FORMAT,
  openUnsealShare,
  readUnsealShareFile,
  unsealShareFiles,
  writeUnsealShareFile,
  type UnsealShareFile,
  type UnsealInitResponse,
  type UnsealResponse,
  type UnsealStatusResponse,
} from './unseal.js';
