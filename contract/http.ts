/**
 * The SDK-facing HTTP API: one request and one response type per route, with its JSON schema.
 * Bytes are lowercase hex. No response type has a field that can hold share or private-key material;
 * test/integration/api-surface.test.ts enumerates every route and checks that.
 */
import { BUNDLE_FORMAT, BUNDLE_VERSION, RESHARED_BUNDLE_VERSION, type AnyBundleJson, type DealtSubSharesJson, type WrappedShareJson } from '../core/bundle.js';
import { OPERATIONS, type Operation } from '../core/session.js';
import { SUITE_IDS, type SuiteId } from '../core/suites.js';
import { WRAP_KEMS } from '../core/wrap.js';
import { AUDIT_OPERATIONS, AUDIT_OUTCOMES, AUDIT_SEVERITIES, type AuditOperation } from '../core/audit-verify.js';
import { KEY_STATES, MAX_ROTATION_PERIOD_MS } from '../core/lifecycle.js';
import { MAX_ECDSA_PRESIGN_BATCH } from '../core/wire.js';

/** Key versions and epochs are 32-bit unsigned integers wherever they are encoded (I2OSP(version, 4), core/session.ts). */
/** The requests the policy decides on: every session, and lifecycle changes of a key. */
export const POLICY_OPERATIONS = [
  'keygen',
  'sign',
  'decapsulate',
  'refresh',
  'export',
  'import',
  'rotate',
  'verify',
  'retire',
  'archive',
  'activate',
  'destroy',
  'rotation.set',
  'decline',
  'repair',
  'reshare',
] as const satisfies readonly AuditOperation[];
export type PolicyOperation = (typeof POLICY_OPERATIONS)[number];

export const MAX_VERSION = 0xffffffff;

/*
 * Every request schema is strict: the validator never coerces (node/http/api.ts), and every integer has both
 * bounds. A schema's `description` says in words what its value is, because a request that does not
 * fit is answered "<field>: expected <description>" (node/http/api.ts describeValidationError), never in
 * the validator's own wording. Schemas without one are described from their type and bounds.
 */
const hex = (min: number, max: number) =>
  ({
    type: 'string',
    pattern: '^([0-9a-fA-F]{2})*$',
    minLength: min * 2,
    maxLength: max * 2,
    description: min === max ? `${min} bytes as hex` : `hex, ${min} to ${max} bytes`,
  }) as const;
const id = {
  type: 'string',
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$',
  description: 'an id: 1 to 128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
} as const;
const index = { type: 'integer', minimum: 1, maximum: 255, description: 'a node index, an integer from 1 to 255' } as const;
const players = { type: 'array', items: index, minItems: 2, maxItems: 255, uniqueItems: true, description: 'a list of 2 to 255 distinct node indexes' } as const;
const sessionId = hex(16, 16);
const suite = { type: 'string', enum: [...SUITE_IDS] } as const;
const version = { type: 'integer', minimum: 1, maximum: MAX_VERSION, description: `a key version, an integer from 1 to ${MAX_VERSION}` } as const;
const threshold = { type: 'integer', minimum: 2, maximum: 255, description: 'a threshold, an integer from 2 to 255' } as const;
/** Checked in full by the node (core/derive.ts parseDerivationPath), whose errors say what is wrong (e.g. a hardened step). */
const derivationPath = { type: 'string', minLength: 1, maxLength: 2900, description: 'a non-hardened BIP-32 path such as m/0/5' } as const;
const keyState = { type: 'string', enum: [...KEY_STATES] } as const;
/** A key version in a query string (text; node/http/api.ts parseDecimal turns it into a number). */
const versionText = { type: 'string', description: `a key version in decimal, 1 to ${MAX_VERSION}` } as const;
const time = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
/** A duration in milliseconds given by a caller (each use checks its own narrower bounds too). */
const durationMs = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'a duration in milliseconds, a positive integer' } as const;

export const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    culprits: { type: 'array', items: index },
    nodes: { type: 'array', items: index },
    /** Transferable evidence against the culprits (hex of core/evidence.ts encodeEvidence); the SDK re-checks it. */
    evidence: { type: 'string' },
  },
  additionalProperties: false,
} as const;

export interface PublicKeyPackageJson {
  suite: string;
  threshold: number;
  parties: number;
  epoch: number;
  commitments: string[];
  verifyingShares: string[];
  /** The committee (node indices holding shares, ascending) when it is not 1..parties (core/committee.ts). */
  indices?: number[];
}
const publicPackageSchema = {
  type: 'object',
  required: ['suite', 'threshold', 'parties', 'epoch', 'commitments', 'verifyingShares'],
  properties: {
    suite,
    threshold: { type: 'integer' },
    parties: { type: 'integer' },
    epoch: { type: 'integer' },
    commitments: { type: 'array', items: { type: 'string' } },
    verifyingShares: { type: 'array', items: { type: 'string' } },
    indices: { type: 'array', items: { type: 'integer' } },
  },
  additionalProperties: false,
} as const;

export interface KeyInfo {
  keyId: string;
  version: number;
  suite: string;
  /**
   * What the suite's signatures are (core/suites.ts SUITE_SCHEMES), e.g. "FROST Schnorr (RFC 9591), not
   * ECDSA" for secp256k1 and p256: standard ECDSA verifiers do not accept them.
   */
  scheme: string;
  /** The suite's standard public-key encoding, hex. */
  publicKey: string;
  threshold: number;
  parties: number;
  epoch: number;
  /** core/lifecycle.ts: active | retired | archived | destroyed. */
  state: string;
  exportable: boolean;
  publicPackage: PublicKeyPackageJson;
  createdAt: number;
  /** Only when the key carries a rotation period: where this version stands (core/lifecycle.ts rotationStatus). */
  rotation?: RotationInfo;
  /**
   * secp256k1, bip340 and ed25519 keys made since derivation exists (core/derive.ts): the 32-byte chain
   * code, hex, made at keygen from the DKG transcript. Child keys: sign with `path`.
   */
  chainCode?: string;
  /** secp256k1 and bip340 only: the BIP-32 extended public key (mainnet "xpub") of the key. */
  xpub?: string;
}
/** GET /v1/keys: every version of every key of the caller's tenant, by keyId then version. */
export interface ListKeysResponse {
  keys: KeyInfo[];
}
export interface RotationInfo {
  periodMs: number;
  /**
   * none (not active), ok, warning (due soon: the nodes log a warning), due (the nodes are rotating it),
   * overdue (due, and this node's attempts have not rotated it: the fields below say why).
   */
  status: 'none' | 'ok' | 'warning' | 'due' | 'overdue';
  dueAt?: number;
  /** overdue only: scheduled attempts made, when the last began, why it failed (one line), when the next begins. */
  attempts?: number;
  lastAttemptAt?: number;
  lastError?: string;
  nextAttemptAt?: number;
}
const keyInfoSchema = {
  type: 'object',
  required: ['keyId', 'version', 'suite', 'scheme', 'publicKey', 'threshold', 'parties', 'epoch', 'state', 'exportable', 'publicPackage', 'createdAt'],
  properties: {
    keyId: id,
    version,
    suite,
    scheme: { type: 'string' },
    publicKey: { type: 'string' },
    threshold: { type: 'integer' },
    parties: { type: 'integer' },
    epoch: { type: 'integer' },
    state: keyState,
    exportable: { type: 'boolean' },
    publicPackage: publicPackageSchema,
    createdAt: time,
    rotation: {
      type: 'object',
      required: ['periodMs', 'status'],
      properties: {
        periodMs: { type: 'integer' },
        status: { type: 'string', enum: ['none', 'ok', 'warning', 'due', 'overdue'] },
        dueAt: time,
        attempts: { type: 'integer' },
        lastAttemptAt: time,
        lastError: { type: 'string' },
        nextAttemptAt: time,
      },
      additionalProperties: false,
    },
    chainCode: hex(32, 32),
    xpub: { type: 'string', maxLength: 120 },
  },
  additionalProperties: false,
} as const;

export interface NodeInfo {
  index: number;
  parties: number;
  identityPublicKey: string;
  /** ML-KEM-768 public key that shares and results can be wrapped to for this node. */
  importPublicKey: string;
  ready: boolean;
  online: number[];
  /** The backend doing each group's arithmetic, by group name, e.g. {"edwards25519": "sodium-native", "secp256k1": "libsecp256k1 (native)", "P-256": "noble"}. */
  groupBackends: Record<string, string>;
}

export interface KeygenRequest {
  sessionId: string;
  keyId: string;
  suite: string;
  threshold: number;
  exportable?: boolean;
  /** Rotate the key this long after each version is created (nodes enforce it). Part of the session digest. */
  rotationPeriodMs?: number;
}
export interface SignRequest {
  sessionId: string;
  message: string;
  players: number[];
  version?: number;
  /**
   * Sign with a child key (core/derive.ts): a non-hardened BIP-32 path such as "m/0/5" (secp256k1,
   * bip340, ed25519 keys). Part of the session digest: every signer must be given the same path.
   */
  path?: string;
  /**
   * Threshold ECDSA keys only: `message` is already the digest to sign (16..64 bytes, e.g. Keccak-256
   * or double SHA-256). Without it the node signs SHA-256(message). Part of the session digest.
   */
  prehashed?: boolean;
}
export interface SignResponse {
  keyId: string;
  version: number;
  /**
   * The suite's signature, hex. Threshold ECDSA keys: the compact r ‖ s (IEEE P1363, 64 bytes), low-s
   * normalised; `der` and `recoveryId` give the other forms.
   */
  signature: string;
  /** Threshold ECDSA keys: the same signature DER-encoded (SEC 1 §C.5; OpenSSL's form), hex. */
  der?: string;
  /** Threshold ECDSA keys: the SEC 1 §4.1.6 recovery id (0..3), e.g. Ethereum's v - 27. */
  recoveryId?: number;
}
export interface DecapsulateRequest {
  sessionId: string;
  enc: string;
  players: number[];
  /** ML-KEM-768 public key of the receiver that alone can combine the partial results. */
  receiverPublicKey: string;
  version?: number;
}
export interface DecapsulateResponse {
  keyId: string;
  version: number;
  index: number;
  /** The partial decapsulation with its DLEQ proof, HPKE-wrapped to receiverPublicKey. */
  wrappedPartial: { kem: number; enc: string; ciphertext: string };
  publicPackage: PublicKeyPackageJson;
}
/**
 * Presignatures (issue 10): FROST with preprocessing, RFC 9591 §5.1 done ahead of time.
 *
 * A node keeps, in memory only, a pool of nonce pairs per signing key version under a random pool id
 * that dies with the process (a restart or a restored data directory can never revive a nonce). It hands
 * each commitment out once, in a batch signed with its ML-DSA-65 identity (core/presign.ts), and signs
 * with a nonce only after deleting it from the pool.
 */
export const MAX_PRESIGN_BATCH = 1024;
/** The most messages one sign-batch request may carry. */
export const MAX_SIGN_BATCH = 256;
export interface PresignCommitmentJson {
  /** The entry's index in its pool (unique per pool). */
  index: number;
  hiding: string;
  binding: string;
}
export interface PresignaturesRequest {
  count: number;
  version?: number;
}
export interface PresignaturesResponse {
  /** The caller's tenant (from its API key): bound by the batch signature. */
  tenant: string;
  keyId: string;
  version: number;
  epoch: number;
  suite: string;
  node: number;
  /** 16 random bytes, new for every pool; unknown to the node after a restart. */
  poolId: string;
  commitments: PresignCommitmentJson[];
  /** ML-DSA-65 signature of the node identity over core/presign.ts presignBatchSignedBytes. */
  signature: string;
}
/** One signer's entry in a presigned commitment list: which node, which pool entry, and its commitments. */
export interface PresignedCommitmentJson {
  node: number;
  poolId: string;
  index: number;
  hiding: string;
  binding: string;
}
/** One message and the commitment list chosen for it (one entry per signer, at least the threshold). */
export interface PresignedItemJson {
  message: string;
  commitments: PresignedCommitmentJson[];
}
/** Ask this node for its signature share over one message with a presigned commitment list: one round trip. */
export interface SignShareRequest extends PresignedItemJson {
  version: number;
  epoch: number;
  /**
   * Sign with the child key of this non-hardened BIP-32 path (core/derive.ts), as in SignRequest. No
   * session digest binds it here: the aggregator gives every player the same path, and shares made for
   * different paths do not combine into a signature (each nonce still signs once).
   */
  path?: string;
}
export interface SignShareResponse {
  keyId: string;
  version: number;
  epoch: number;
  node: number;
  /** The RFC 9591 §5.2 signature share (SerializeScalar). Alone it reveals nothing about the key share. */
  share: string;
  /**
   * The group commitment R this node computed for the list, as the signature encodes it: lets the
   * aggregator skip recomputing R; it keeps the signature only if it verifies (never evidence).
   */
  commitment: string;
}
/** Signature shares over up to MAX_SIGN_BATCH messages with one key, each with its own commitment list. */
export interface SignBatchRequest {
  keyId: string;
  version: number;
  epoch: number;
  items: PresignedItemJson[];
}
export interface SignBatchResponse {
  keyId: string;
  version: number;
  epoch: number;
  node: number;
  /** shares[i] is the share over items[i]. */
  shares: string[];
  /** commitments[i] is the group commitment R of items[i] (SignShareResponse.commitment). */
  commitments: string[];
}
/**
 * Threshold ECDSA presignatures (issue 12, "Presigning"; node/presign/ecdsa-pools.ts): DKLs23's rounds
 * 1-2 and the message-free part of round 3 run ahead in a session among the signers (a 'sign' session:
 * the policy decides it as a signing), which leaves `count` presignatures at every signer, in memory
 * only, each under an id that is the same at every signer. Then one round signs: each signer answers
 * (u_i, w_i) for the message with one id, after deleting that presignature, and the caller combines.
 */
export { MAX_ECDSA_PRESIGN_BATCH };
export interface EcdsaPresignaturesRequest {
  sessionId: string;
  /** The signers (at least the threshold); the presignatures sign only with exactly this set. */
  players: number[];
  /** 1..MAX_ECDSA_PRESIGN_BATCH. */
  count: number;
  version?: number;
}
export interface EcdsaPresignatureJson {
  /** 16 bytes, hex: the same at every signer. */
  id: string;
  /** R = Σ R_j (SEC 1 compressed, hex): public; r = x(R) mod n is the signature's r. */
  R: string;
}
export interface EcdsaPresignaturesResponse {
  keyId: string;
  version: number;
  epoch: number;
  node: number;
  /** The signer set, sorted. */
  players: number[];
  presignatures: EcdsaPresignatureJson[];
}
export interface EcdsaSignShareRequest {
  presignatureId: string;
  message: string;
  /** As SignRequest.prehashed: `message` is the digest to sign. Default: SHA-256(message). */
  prehashed?: boolean;
  version: number;
  epoch: number;
  /** The signer set the presignature was made for (every signer is sent the same). */
  players: number[];
}
export interface EcdsaSignShareResponse {
  keyId: string;
  version: number;
  epoch: number;
  node: number;
  presignatureId: string;
  /** DKLs23 round-3 broadcast (Protocol 3.6 step 9): u_i and w_i, 32-byte scalars, hex. Public by design. */
  u: string;
  w: string;
}
/** Decline a session the operator refused: the key and operation it was asked for, and its session id. */
export interface DeclineRequest {
  sessionId: string;
  keyId: string;
  /** The declined session's operation: keygen and import name a key that does not exist yet. */
  operation: Operation;
  version?: number;
}
export interface DeclineResponse {
  sessionId: string;
  declined: boolean;
}
/** What a node holds of a key's commits (node/sessions/commit.ts): for `tessera repair`. */
export interface CommitStatusResponse {
  keyId: string;
  /** A change staged on this node and not yet committed (voted: only its certificate can finish it). */
  /** `voters`: the nodes whose votes its certificate needs (the session's players); absent for a change staged before committees (every node). */
  staged?: { sessionId: string; tenant: string; operation: string; version: number; resultDigest: string; released: boolean; voters?: number[] };
  /** Every version this node holds, with the session whose certificate made it what it is, and its committee (`nodes`, the key's holders). */
  versions: { version: number; epoch: number; state: string; certSessionId?: string; nodes?: number[] }[];
  /** The commit certificates this node stores for the key (hex, core/commit.ts encodeCertificate). */
  certificates: { sessionId: string; certificate: string }[];
}
/** Repair of a staged change (sdk/client.ts Cluster.repair): attest it, release the vote, or drop it. */
export interface StagedActionRequest {
  sessionId: string;
  /** For release: every node's attestation that it staged the same result. */
  attestations?: { node: number; attestation: string }[];
}
export interface StagedAttestResponse {
  sessionId: string;
  node: number;
  attestation: string;
}
export interface StagedReleaseResponse {
  sessionId: string;
  node: number;
  vote: string;
}
export interface StagedDropResponse {
  sessionId: string;
  dropped: boolean;
}
/** Hand a node a commit certificate (from another node) to finish a commit it missed. */
export interface RepairRequest {
  certificate: string;
}
export interface RepairResponse {
  keyId: string;
  sessionId: string;
  operation: string;
  version: number;
  outcome: 'committed' | 'already-committed';
}
/**
 * Reshare a key version to a new committee (issue 13): dealers of the old committee deal sub-shares of
 * their shares to `nodes` under threshold `threshold`; the public key is unchanged. Every player
 * (dealers ∪ nodes) is asked with the same request; a node in `nodes` that holds no record of the key
 * yet joins as a receiver.
 */
export interface ReshareRequest {
  sessionId: string;
  /** The key's suite: a node joining the committee holds no record of the key yet, and the session binds it. */
  suite: SuiteId;
  /** The version to reshare (required: a joining node has no record to take a default from). */
  version: number;
  /** The new threshold t'. */
  threshold: number;
  /** The new committee: the node indices that will hold shares, ascending. */
  nodes: number[];
  /** The old holders that deal (at least the old threshold of them), ascending. */
  dealers: number[];
  /** Hex of core/commit.ts publicPackageDigest of the committed old package: every player reshares the same key state. */
  oldPackageDigest: string;
}
export interface ReshareResponse {
  keyId: string;
  version: number;
  /** The node that answers. */
  node: number;
  /** The new epoch (old epoch + 1). */
  epoch: number;
  threshold: number;
  /** The new committee. */
  indices: number[];
  /** The new public package (same group key). */
  publicPackage: PublicKeyPackageJson;
  /** The reshare's commit certificate, hex of core/commit.ts encodeCertificate: what a handoff hands on. */
  certificate: string;
  role: 'dealer' | 'receiver' | 'dealer+receiver';
}
/** After a reshare: an old holder that was not in the session is handed the certificate and the new package, and erases its share. */
export interface ReshareHandoffRequest {
  certificate: string;
  publicPackage: PublicKeyPackageJson;
}
export interface ReshareHandoffResponse {
  keyId: string;
  version: number;
  node: number;
  outcome: 'erased' | 'already-committed' | 'not-a-holder';
}
/**
 * An admin API key may act for any tenant of its node by naming it in this header (the SDK's
 * `Cluster.forTenant`): a membership change reshares every key of every tenant (issue 13). The
 * tenant's own policy still decides; the audit names the admin key. A tenant key that sends it is refused.
 */
export const ACT_AS_TENANT_HEADER = 'x-tessera-tenant';

/** One member of the cluster: its node index and ML-DSA-65 identity public key (hex, 1952 bytes). */
export interface MemberJson {
  index: number;
  identityPublicKey: string;
}
/** The node's committed cluster membership (core/membership.ts). */
export interface MembershipResponse {
  epoch: number;
  members: MemberJson[];
  /** Hex of core/membership.ts membershipDigest. */
  digest: string;
  /**
   * Whether the node holds this membership's certificate (a change it committed). False for the one its
   * config file gave: the cluster's first, or — at an epoch above the other nodes' — the membership a
   * node being added or repaired was started with before the change is committed.
   */
  committed: boolean;
}
/**
 * Change the cluster's membership to `members` at `epoch` (the current epoch + 1): a certified session
 * of every member whose identity the change keeps; each one's operator asks its own node with the same request.
 */
export interface ChangeMembershipRequest {
  sessionId: string;
  epoch: number;
  members: MemberJson[];
}
export interface ChangeMembershipResponse extends MembershipResponse {
  node: number;
  /** Hex of the change's commit certificate (core/commit.ts encodeCertificate). */
  certificate: string;
  added: number[];
  removed: number[];
  replaced: number[];
  unchanged: number[];
}
/** Hand a node the certificate of a membership change it missed (it checks it against its own membership). */
export interface ApplyMembershipRequest {
  epoch: number;
  members: MemberJson[];
  certificate: string;
}
export interface ApplyMembershipResponse extends MembershipResponse {
  node: number;
  outcome: 'committed' | 'already-committed';
}
/** Every membership change this node committed, oldest first, with its certificate. */
export interface MembershipHistoryResponse {
  changes: { epoch: number; members: MemberJson[]; certificate: string }[];
}
export interface TenantListResponse {
  tenants: { name: string; createdAt?: number }[];
}
export interface RefreshRequest {
  sessionId: string;
  version?: number;
}
export interface RefreshResponse {
  keyId: string;
  version: number;
  epoch: number;
}

export interface VerifyRequest {
  message: string;
  /** The suite's signature, hex; threshold ECDSA keys: compact r ‖ s (64 bytes) or DER. */
  signature: string;
  version?: number;
  /** Threshold ECDSA keys only: `message` is the signed digest itself (as SignRequest.prehashed). */
  prehashed?: boolean;
}
export interface VerifyResponse {
  keyId: string;
  version: number;
  valid: boolean;
}
export interface RotateRequest {
  sessionId: string;
  /** The version to rotate out; default the newest active one. It is retired once the new one exists. */
  version?: number;
}
export interface RotateResponse {
  keyId: string;
  /** The new version (made by DKG under the same key id). */
  version: number;
  previousVersion: number;
  suite: string;
  publicKey: string;
}
/** A lifecycle transition (core/lifecycle.ts STATE_TRANSITIONS): retire, archive, activate or destroy one version. */
export interface SetStateRequest {
  sessionId: string;
  version: number;
  state: 'active' | 'retired' | 'archived' | 'destroyed';
}

// ---- administration (admin API keys only, node/governance/tenants.ts)
export interface TenantResponse {
  name: string;
  createdAt?: number;
}
export interface CreateApiKeyRequest {
  tenant: string;
  role?: 'tenant' | 'admin';
}
export interface ApiKeyInfoJson {
  id: string;
  tenant: string;
  role: string;
  source: string;
  createdAt?: number;
  revokedAt?: number;
}
/** The new API key is in this response and nowhere else: the node keeps only its SHA-256. */
export interface CreateApiKeyResponse extends ApiKeyInfoJson {
  apiKey: string;
}
export interface PolicyResponse {
  version: number;
  rules: unknown[];
  updatedAt: number;
  updatedBy?: string;
  failOpen: FailOpenJson;
}
export interface FailOpenJson {
  active: boolean;
  until?: number;
  enabledBy?: string;
}

export interface ExportRequest {
  sessionId: string;
  /**
   * ML-KEM-768 or X-Wing public keys: one for every share, or one per share (node i uses [i - 1]);
   * with `reshare`, one per destination node (destination node j's at [j - 1]) or one for all.
   */
  wrappingKeys: string[];
  version?: number;
  /**
   * A destination of another size (a version 2 bundle, core/bundle.ts): every node deals its
   * re-randomised share to destination nodes 1..parties with threshold `threshold` (core/reshare.ts).
   */
  reshare?: { threshold: number; parties: number };
}
export interface ExportResponse {
  keyId: string;
  version: number;
  index: number;
  /** This node's re-randomised share, HPKE-wrapped to its wrapping key (core/bundle.ts). Absent with `reshare`. */
  wrappedShare?: WrappedShareJson;
  /** With `reshare`: this node's commitments and its sub-share for each destination node, sealed to that node's key. */
  dealt?: DealtSubSharesJson;
  /** The public package of the re-randomised shares (one epoch above the cluster's, never committed). */
  publicPackage: PublicKeyPackageJson;
}
export interface ImportRequest {
  sessionId: string;
  /** The key id to store under; default the bundle's. */
  keyId?: string;
  /** A version 1 bundle (same size) or a version 2 bundle dealt for this cluster's size. */
  bundle: AnyBundleJson;
  /** Fixed at import and never changed; default false. */
  exportable?: boolean;
  /** The destination's threshold; when given, the bundle's must equal it. */
  threshold?: number;
}

const wrappedShareSchema = {
  type: 'object',
  required: ['index', 'kem', 'wrappingKeyFingerprint', 'enc', 'ciphertext'],
  properties: {
    index,
    kem: { type: 'string', enum: [...WRAP_KEMS] },
    wrappingKeyFingerprint: hex(32, 32),
    enc: hex(1, 2048),
    ciphertext: hex(1, 256),
  },
  additionalProperties: false,
} as const;
const pointList = { type: 'array', items: hex(32, 65), minItems: 1, maxItems: 255 } as const;
/** A version 2 bundle's dealer: its commitments and one sealed sub-share per destination node. */
const dealtSchema = {
  type: 'object',
  required: ['commitments', 'wrappedShares'],
  properties: { commitments: pointList, wrappedShares: { type: 'array', items: wrappedShareSchema, minItems: 2, maxItems: 255 } },
  additionalProperties: false,
} as const;
/**
 * Shape only; core/bundle.ts parseBundle checks everything else before any use, including which
 * fields each version needs (version 1: wrappedShares; version 2: source and dealers).
 */
const bundleSchema = {
  type: 'object',
  required: ['format', 'version', 'keyId', 'keyVersion', 'suite', 'threshold', 'parties', 'epoch', 'publicKey', 'commitments', 'verifyingShares'],
  properties: {
    format: { type: 'string', enum: [BUNDLE_FORMAT] },
    version: { type: 'integer', enum: [BUNDLE_VERSION, RESHARED_BUNDLE_VERSION] },
    keyId: id,
    keyVersion: version,
    suite,
    threshold,
    parties: { type: 'integer', minimum: 2, maximum: 255 },
    epoch: { type: 'integer', minimum: 0, maximum: MAX_VERSION },
    publicKey: hex(32, 65),
    commitments: pointList,
    verifyingShares: pointList,
    wrappedShares: { type: 'array', items: wrappedShareSchema, minItems: 1, maxItems: 255 },
    source: {
      type: 'object',
      required: ['threshold', 'parties', 'epoch', 'commitments', 'verifyingShares'],
      properties: {
        threshold,
        parties: { type: 'integer', minimum: 2, maximum: 255 },
        indices: players,
        epoch: { type: 'integer', minimum: 0, maximum: MAX_VERSION },
        commitments: pointList,
        verifyingShares: pointList,
      },
      additionalProperties: false,
    },
    dealers: {
      type: 'array',
      minItems: 2,
      maxItems: 255,
      items: {
        type: 'object',
        required: ['index', 'commitments', 'wrappedShares'],
        properties: { index, commitments: pointList, wrappedShares: { type: 'array', items: wrappedShareSchema, minItems: 2, maxItems: 255 } },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const;

const keyParams = { type: 'object', required: ['keyId'], properties: { keyId: id }, additionalProperties: false } as const;
const epochSchema = { type: 'integer', minimum: 0, maximum: MAX_VERSION, description: `a key epoch, an integer from 0 to ${MAX_VERSION}` } as const;
/**
 * A committee or dealer set in a request: 2..255 distinct node indices (a threshold is at least 2).
 * Ascending order and threshold <= size are checked by the node (core/committee.ts checkCommittee).
 */
const membershipEpoch = { type: 'integer', minimum: 0, maximum: 0xfffffffe, description: 'a membership epoch, an integer from 0' } as const;
const memberSchema = {
  type: 'object',
  required: ['index', 'identityPublicKey'],
  properties: { index, identityPublicKey: hex(1952, 1952) },
  additionalProperties: false,
} as const;
const membersInput = { type: 'array', minItems: 2, maxItems: 255, items: memberSchema, description: 'the members: 2 to 255 of { index, identityPublicKey }' } as const;
const membershipSchema = {
  type: 'object',
  required: ['epoch', 'members', 'digest', 'committed'],
  properties: { epoch: membershipEpoch, members: { type: 'array', items: memberSchema }, digest: hex(32, 32), committed: { type: 'boolean' } },
  additionalProperties: false,
} as const;
const committee = (what: string) =>
  ({ type: 'array', items: index, minItems: 2, maxItems: 255, uniqueItems: true, description: `${what}: a list of 2 to 255 distinct node indexes` }) as const;
/**
 * A public key package given in a request (reshare handoff): shape and bounds only; the node checks the
 * points and that it is the package the certificate commits.
 */
const publicPackageInputSchema = {
  type: 'object',
  required: ['suite', 'threshold', 'parties', 'epoch', 'commitments', 'verifyingShares'],
  properties: {
    suite,
    threshold,
    parties: { type: 'integer', minimum: 2, maximum: 255, description: 'a party count, an integer from 2 to 255' },
    epoch: epochSchema,
    commitments: pointList,
    verifyingShares: pointList,
    indices: committee('the committee'),
  },
  additionalProperties: false,
} as const;

/** A presigned commitment list entry (contract PresignedCommitmentJson); points are checked by the node, not here. */
const presignedCommitment = {
  type: 'object',
  required: ['node', 'poolId', 'index', 'hiding', 'binding'],
  properties: {
    node: index,
    poolId: hex(16, 16),
    index: { type: 'integer', minimum: 0, maximum: MAX_VERSION, description: 'a pool entry index, an integer from 0 to 4294967295' },
    hiding: hex(32, 33),
    binding: hex(32, 33),
  },
  additionalProperties: false,
} as const;
const presignedItemProperties = {
  message: hex(0, 1 << 20),
  commitments: { type: 'array', items: presignedCommitment, minItems: 2, maxItems: 255, description: 'a list of 2 to 255 signer commitments' },
} as const;
const apiKeyInfoProperties = {
  id,
  tenant: id,
  role: { type: 'string', enum: ['tenant', 'admin'] },
  source: { type: 'string', enum: ['store', 'config'] },
  createdAt: time,
  revokedAt: time,
} as const;
const apiKeyInfoSchema = { type: 'object', required: ['id', 'tenant', 'role', 'source'], properties: apiKeyInfoProperties, additionalProperties: false } as const;
const policyOperations = { type: 'array', items: { type: 'string', enum: [...POLICY_OPERATIONS] } } as const;
const policyRuleSchema = {
  type: 'object',
  required: ['id', 'type'],
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['allow-operations', 'deny', 'quota', 'rate'] },
    scope: { type: 'object', properties: { tenant: id, apiKeyId: id, keyId: id }, additionalProperties: false },
    operations: policyOperations,
    per: { type: 'string', enum: ['tenant', 'apiKey', 'key'] },
    limit: { type: 'integer' },
    periodMs: { type: 'integer' },
    intervalMs: { type: 'integer' },
  },
  additionalProperties: false,
} as const;
const failOpenSchema = {
  type: 'object',
  required: ['active'],
  properties: { active: { type: 'boolean' }, until: time, enabledBy: id },
  additionalProperties: false,
} as const;
const policySchema = {
  type: 'object',
  required: ['version', 'rules', 'updatedAt', 'failOpen'],
  properties: { version: { type: 'integer' }, rules: { type: 'array', items: policyRuleSchema }, updatedAt: time, updatedBy: id, failOpen: failOpenSchema },
  additionalProperties: false,
} as const;
/** For documentation: the closed lists an entry's words come from (core/audit-verify.ts). */
export const AUDIT_WORDS = { operations: AUDIT_OPERATIONS, outcomes: AUDIT_OUTCOMES, severities: AUDIT_SEVERITIES } as const;

/**
 * The audit log as exported: each entry and checkpoint is sent as its own JSON text, exactly as the
 * node decoded it from its LevelDB, so that whatever is stored (edited, with extra or mistyped fields)
 * reaches the verifier unchanged instead of being coerced by the response serializer.
 */
export interface AuditLogResponse {
  format: number;
  entries: string[];
  checkpoints: string[];
}
const withErrors = (ok: object) => ({ 200: ok, '4xx': errorSchema, '5xx': errorSchema });

/**
 * A metrics token (node and coordinator config `metricsToken`): the bearer token that reads GET /metrics.
 * 16..256 printable ASCII characters without spaces, what fits an "Authorization: Bearer" header.
 */
export const METRICS_TOKEN_PATTERN = /^[\x21-\x7e]{16,256}$/;

/** Route table: method, URL and schema of every route the node serves. */
export const ROUTES = {
  health: { method: 'GET', url: '/health', schema: { response: withErrors({ type: 'object', properties: { status: { type: 'string' } }, required: ['status'], additionalProperties: false }) } },
  ready: {
    method: 'GET',
    url: '/ready',
    schema: { response: { 200: { type: 'object', properties: { ready: { type: 'boolean' } }, additionalProperties: false }, 503: errorSchema } },
  },
  // Prometheus metrics (node/metrics.ts), in the text exposition format (text/plain, not JSON): an admin
  // API key or the node's metrics token (node/config.ts metricsToken) reads them.
  metrics: { method: 'GET', url: '/metrics', schema: { response: withErrors({ type: 'string', description: 'Prometheus text exposition format 0.0.4' }) } },
  node: {
    method: 'GET',
    url: '/v1/node',
    schema: {
      response: withErrors({
        type: 'object',
        required: ['index', 'parties', 'identityPublicKey', 'importPublicKey', 'ready', 'online', 'groupBackends'],
        properties: {
          index,
          parties: { type: 'integer' },
          identityPublicKey: { type: 'string' },
          importPublicKey: { type: 'string' },
          ready: { type: 'boolean' },
          online: { type: 'array', items: index },
          // Closed (api-surface: no open response object): one backend name per group (core/suites.ts groupBackendNames).
          groupBackends: {
            type: 'object',
            required: ['edwards25519', 'secp256k1', 'P-256'],
            properties: { edwards25519: { type: 'string' }, secp256k1: { type: 'string' }, 'P-256': { type: 'string' } },
            additionalProperties: false,
          },
        },
        additionalProperties: false,
      }),
    },
  },
  keygen: {
    method: 'POST',
    url: '/v1/keys',
    schema: {
      body: {
        type: 'object',
        required: ['sessionId', 'keyId', 'suite', 'threshold'],
        properties: {
          sessionId,
          keyId: id,
          suite,
          threshold,
          exportable: { type: 'boolean' },
          rotationPeriodMs: { type: 'integer', minimum: 1, maximum: MAX_ROTATION_PERIOD_MS, description: `a rotation period in milliseconds, an integer up to ${MAX_ROTATION_PERIOD_MS}` },
        },
        additionalProperties: false,
      },
      response: withErrors(keyInfoSchema),
    },
  },
  /**
   * Every version of every key of the caller's tenant, ordered by keyId then version (issue 11,
   * `tessera keys list`). Optional filter by lifecycle state. Public data only: no share leaves.
   */
  listKeys: {
    method: 'GET',
    url: '/v1/keys',
    schema: {
      querystring: { type: 'object', properties: { state: keyState }, additionalProperties: false },
      response: withErrors({ type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: keyInfoSchema } }, additionalProperties: false }),
    },
  },
  getKey: {
    method: 'GET',
    url: '/v1/keys/:keyId',
    schema: {
      params: keyParams,
      // A query string is text: the version is parsed by node/http/api.ts parseDecimal, strictly, not coerced.
      querystring: { type: 'object', properties: { version: versionText }, additionalProperties: false },
      response: withErrors(keyInfoSchema),
    },
  },
  sign: {
    method: 'POST',
    url: '/v1/keys/:keyId/sign',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'message', 'players'],
        properties: { sessionId, message: hex(0, 1 << 20), players, version, path: derivationPath, prehashed: { type: 'boolean' } },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'signature'],
        properties: { keyId: id, version, signature: { type: 'string' }, der: { type: 'string' }, recoveryId: { type: 'integer', minimum: 0, maximum: 3 } },
        additionalProperties: false,
      }),
    },
  },
  /** Reserve `count` presignature commitments of this node (each is handed out once), in a signed batch. */
  presignatures: {
    method: 'POST',
    url: '/v1/keys/:keyId/presignatures',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['count'],
        properties: { count: { type: 'integer', minimum: 1, maximum: MAX_PRESIGN_BATCH, description: `a count, an integer from 1 to ${MAX_PRESIGN_BATCH}` }, version },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['tenant', 'keyId', 'version', 'epoch', 'suite', 'node', 'poolId', 'commitments', 'signature'],
        properties: {
          tenant: id,
          keyId: id,
          version,
          epoch: { type: 'integer' },
          suite,
          node: index,
          poolId: { type: 'string' },
          commitments: {
            type: 'array',
            items: {
              type: 'object',
              required: ['index', 'hiding', 'binding'],
              properties: { index: { type: 'integer' }, hiding: { type: 'string' }, binding: { type: 'string' } },
              additionalProperties: false,
            },
          },
          signature: { type: 'string' },
        },
        additionalProperties: false,
      }),
    },
  },
  /** One-round signing: this node's signature share over a message with a presigned commitment list. */
  signShare: {
    method: 'POST',
    url: '/v1/keys/:keyId/sign-share',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['message', 'commitments', 'version', 'epoch'],
        properties: { ...presignedItemProperties, version, epoch: epochSchema, path: derivationPath },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'epoch', 'node', 'share', 'commitment'],
        properties: { keyId: id, version, epoch: { type: 'integer' }, node: index, share: { type: 'string' }, commitment: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  /** Signature shares over up to MAX_SIGN_BATCH messages with one key; one audit entry per message. */
  signBatch: {
    method: 'POST',
    url: '/v1/sign-batch',
    schema: {
      body: {
        type: 'object',
        required: ['keyId', 'version', 'epoch', 'items'],
        properties: {
          keyId: id,
          version,
          epoch: epochSchema,
          items: {
            type: 'array',
            minItems: 1,
            maxItems: MAX_SIGN_BATCH,
            items: { type: 'object', required: ['message', 'commitments'], properties: presignedItemProperties, additionalProperties: false },
            description: `a list of 1 to ${MAX_SIGN_BATCH} messages, each with its commitment list`,
          },
        },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'epoch', 'node', 'shares', 'commitments'],
        properties: {
          keyId: id,
          version,
          epoch: { type: 'integer' },
          node: index,
          shares: { type: 'array', items: { type: 'string' } },
          commitments: { type: 'array', items: { type: 'string' } },
        },
        additionalProperties: false,
      }),
    },
  },
  /** Threshold ECDSA: make `count` presignatures in a session among `players` (every player's SDK asks its node). */
  ecdsaPresignatures: {
    method: 'POST',
    url: '/v1/keys/:keyId/ecdsa-presignatures',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'players', 'count'],
        properties: {
          sessionId,
          players,
          count: { type: 'integer', minimum: 1, maximum: MAX_ECDSA_PRESIGN_BATCH, description: `a count, an integer from 1 to ${MAX_ECDSA_PRESIGN_BATCH}` },
          version,
        },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'epoch', 'node', 'players', 'presignatures'],
        properties: {
          keyId: id,
          version,
          epoch: { type: 'integer' },
          node: index,
          players: { type: 'array', items: { type: 'integer' } },
          presignatures: {
            type: 'array',
            items: { type: 'object', required: ['id', 'R'], properties: { id: { type: 'string' }, R: { type: 'string' } }, additionalProperties: false },
          },
        },
        additionalProperties: false,
      }),
    },
  },
  /** Threshold ECDSA one-round signing: this node's (u_i, w_i) for a message with one presignature, used once. */
  ecdsaSignShare: {
    method: 'POST',
    url: '/v1/keys/:keyId/ecdsa-sign-share',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['presignatureId', 'message', 'version', 'epoch', 'players'],
        properties: { presignatureId: hex(16, 16), message: hex(0, 1 << 20), prehashed: { type: 'boolean' }, version, epoch: epochSchema, players },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'epoch', 'node', 'presignatureId', 'u', 'w'],
        properties: { keyId: id, version, epoch: { type: 'integer' }, node: index, presignatureId: { type: 'string' }, u: { type: 'string' }, w: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  decapsulate: {
    method: 'POST',
    url: '/v1/keys/:keyId/decapsulate',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'enc', 'players', 'receiverPublicKey'],
        properties: { sessionId, enc: hex(1, 256), players, receiverPublicKey: hex(1184, 1216), version },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'index', 'wrappedPartial', 'publicPackage'],
        properties: {
          keyId: id,
          version,
          index,
          wrappedPartial: {
            type: 'object',
            required: ['kem', 'enc', 'ciphertext'],
            properties: { kem: { type: 'integer' }, enc: { type: 'string' }, ciphertext: { type: 'string' } },
            additionalProperties: false,
          },
          publicPackage: publicPackageSchema,
        },
        additionalProperties: false,
      }),
    },
  },
  refresh: {
    method: 'POST',
    url: '/v1/keys/:keyId/refresh',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['sessionId'], properties: { sessionId, version }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'epoch'],
        properties: { keyId: id, version, epoch: { type: 'integer' } },
        additionalProperties: false,
      }),
    },
  },
  /**
   * Reshare a key version to a new committee and threshold (issue 13): a session of the dealers and the
   * new committee; every player's SDK asks its own node. Committed with every player's vote.
   */
  reshare: {
    method: 'POST',
    url: '/v1/keys/:keyId/reshare',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'suite', 'version', 'threshold', 'nodes', 'dealers', 'oldPackageDigest'],
        properties: {
          sessionId,
          suite,
          version,
          threshold,
          nodes: committee('the new committee'),
          dealers: committee('the dealers'),
          oldPackageDigest: hex(32, 32),
        },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'node', 'epoch', 'threshold', 'indices', 'publicPackage', 'certificate', 'role'],
        properties: {
          keyId: id,
          version,
          node: index,
          epoch: { type: 'integer' },
          threshold: { type: 'integer' },
          indices: { type: 'array', items: index },
          publicPackage: publicPackageSchema,
          certificate: { type: 'string' },
          role: { type: 'string', enum: ['dealer', 'receiver', 'dealer+receiver'] },
        },
        additionalProperties: false,
      }),
    },
  },
  /** After a reshare, an old holder that was not a player: verify the certificate, commit the new package (erase the old share). */
  reshareHandoff: {
    method: 'POST',
    url: '/v1/keys/:keyId/reshare/handoff',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['certificate', 'publicPackage'],
        properties: { certificate: hex(1, 1 << 20), publicPackage: publicPackageInputSchema },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'node', 'outcome'],
        properties: { keyId: id, version, node: index, outcome: { type: 'string', enum: ['erased', 'already-committed', 'not-a-holder'] } },
        additionalProperties: false,
      }),
    },
  },
  /** The node's committed cluster membership. Admin API keys only. */
  getMembership: { method: 'GET', url: '/v1/admin/membership', schema: { response: withErrors(membershipSchema) } },
  /** Every membership change this node committed, with certificates. Admin API keys only. */
  membershipHistory: {
    method: 'GET',
    url: '/v1/admin/membership/history',
    schema: {
      response: withErrors({
        type: 'object',
        required: ['changes'],
        properties: {
          changes: {
            type: 'array',
            items: {
              type: 'object',
              required: ['epoch', 'members', 'certificate'],
              properties: { epoch: membershipEpoch, members: { type: 'array', items: memberSchema }, certificate: { type: 'string' } },
              additionalProperties: false,
            },
          },
        },
        additionalProperties: false,
      }),
    },
  },
  /** Change the membership: a certified session of the members the change keeps. Admin API keys only. */
  changeMembership: {
    method: 'POST',
    url: '/v1/admin/membership',
    schema: {
      body: {
        type: 'object',
        required: ['sessionId', 'epoch', 'members'],
        properties: { sessionId, epoch: membershipEpoch, members: membersInput },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['epoch', 'members', 'digest', 'committed', 'node', 'certificate', 'added', 'removed', 'replaced', 'unchanged'],
        properties: {
          ...membershipSchema.properties,
          node: index,
          certificate: { type: 'string' },
          added: { type: 'array', items: index },
          removed: { type: 'array', items: index },
          replaced: { type: 'array', items: index },
          unchanged: { type: 'array', items: index },
        },
        additionalProperties: false,
      }),
    },
  },
  /** Finish a membership change this node missed, from its certificate. Admin API keys only. */
  applyMembership: {
    method: 'POST',
    url: '/v1/admin/membership/certificate',
    schema: {
      body: {
        type: 'object',
        required: ['epoch', 'members', 'certificate'],
        properties: { epoch: membershipEpoch, members: membersInput, certificate: hex(1, 1 << 20) },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['epoch', 'members', 'digest', 'committed', 'node', 'outcome'],
        properties: { ...membershipSchema.properties, node: index, outcome: { type: 'string', enum: ['committed', 'already-committed'] } },
        additionalProperties: false,
      }),
    },
  },
  /** Every tenant of this node. Admin API keys only. */
  listTenants: {
    method: 'GET',
    url: '/v1/admin/tenants',
    schema: {
      response: withErrors({
        type: 'object',
        required: ['tenants'],
        properties: {
          tenants: {
            type: 'array',
            items: { type: 'object', required: ['name'], properties: { name: id, createdAt: time }, additionalProperties: false },
          },
        },
        additionalProperties: false,
      }),
    },
  },
  /** Export: re-randomise (not committed), wrap this node's new share to its wrapping key. Needs all n nodes. */
  exportKey: {
    method: 'POST',
    url: '/v1/keys/:keyId/export',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'wrappingKeys'],
        properties: {
          sessionId,
          wrappingKeys: { type: 'array', items: hex(1184, 1216), minItems: 1, maxItems: 255 },
          version,
          reshare: {
            type: 'object',
            required: ['threshold', 'parties'],
            properties: { threshold, parties: { type: 'integer', minimum: 2, maximum: 255, description: 'the destination node count, an integer from 2 to 255' } },
            additionalProperties: false,
          },
        },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'index', 'publicPackage'],
        properties: { keyId: id, version, index, wrappedShare: wrappedShareSchema, dealt: dealtSchema, publicPackage: publicPackageSchema },
        additionalProperties: false,
      }),
    },
  },
  /** Import: unwrap this node's share of a bundle, check it, re-randomise with the others, store. Needs all n nodes. */
  importKey: {
    method: 'POST',
    url: '/v1/import',
    schema: {
      body: {
        type: 'object',
        required: ['sessionId', 'bundle'],
        properties: {
          sessionId,
          keyId: id,
          bundle: bundleSchema,
          exportable: { type: 'boolean' },
          threshold,
        },
        additionalProperties: false,
      },
      response: withErrors(keyInfoSchema),
    },
  },
  /** Verify a signature under a key version (a local check, no session; allowed while active or retired). */
  verify: {
    method: 'POST',
    url: '/v1/keys/:keyId/verify',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['message', 'signature'],
        properties: { message: hex(0, 1 << 20), signature: hex(1, 256), version, prehashed: { type: 'boolean' } },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'valid'],
        properties: { keyId: id, version, valid: { type: 'boolean' } },
        additionalProperties: false,
      }),
    },
  },
  /** Rotate: a new version by DKG under the same key id; the old one is retired. Needs all n nodes. */
  rotate: {
    method: 'POST',
    url: '/v1/keys/:keyId/rotate',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['sessionId'], properties: { sessionId, version }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'version', 'previousVersion', 'suite', 'publicKey'],
        properties: { keyId: id, version, previousVersion: version, suite, publicKey: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  /** Lifecycle transition of one version (retire, archive, activate, destroy). Needs all n nodes. */
  setState: {
    method: 'POST',
    url: '/v1/keys/:keyId/state',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['sessionId', 'version', 'state'], properties: { sessionId, version, state: keyState }, additionalProperties: false },
      response: withErrors(keyInfoSchema),
    },
  },
  createTenant: {
    method: 'POST',
    url: '/v1/admin/tenants',
    schema: {
      body: { type: 'object', required: ['name'], properties: { name: id }, additionalProperties: false },
      response: withErrors({ type: 'object', required: ['name'], properties: { name: id, createdAt: time }, additionalProperties: false }),
    },
  },
  createApiKey: {
    method: 'POST',
    url: '/v1/admin/api-keys',
    schema: {
      body: { type: 'object', required: ['tenant'], properties: { tenant: id, role: { type: 'string', enum: ['tenant', 'admin'] } }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['id', 'tenant', 'role', 'source', 'apiKey'],
        properties: { ...apiKeyInfoProperties, apiKey: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  listApiKeys: {
    method: 'GET',
    url: '/v1/admin/api-keys',
    schema: {
      querystring: { type: 'object', properties: { tenant: id }, additionalProperties: false },
      response: withErrors({ type: 'object', required: ['apiKeys'], properties: { apiKeys: { type: 'array', items: apiKeyInfoSchema } }, additionalProperties: false }),
    },
  },
  revokeApiKey: {
    method: 'POST',
    url: '/v1/admin/api-keys/:id/revoke',
    schema: {
      params: { type: 'object', required: ['id'], properties: { id }, additionalProperties: false },
      response: withErrors(apiKeyInfoSchema),
    },
  },
  getPolicy: { method: 'GET', url: '/v1/admin/policy', schema: { response: withErrors(policySchema) } },
  setPolicy: {
    method: 'POST',
    url: '/v1/admin/policy',
    schema: {
      // Shape only; node/governance/policy.ts validateRules checks each rule and names what is wrong.
      body: { type: 'object', required: ['rules'], properties: { rules: { type: 'array', maxItems: 1000 } }, additionalProperties: false },
      response: withErrors(policySchema),
    },
  },
  enableFailOpen: {
    method: 'POST',
    url: '/v1/admin/policy/fail-open',
    schema: {
      body: { type: 'object', properties: { durationMs }, additionalProperties: false },
      response: withErrors(failOpenSchema),
    },
  },
  disableFailOpen: {
    method: 'POST',
    url: '/v1/admin/policy/fail-open/disable',
    schema: {
      body: { type: 'object', properties: {}, additionalProperties: false },
      response: withErrors(failOpenSchema),
    },
  },
  /** The whole audit log with its signed checkpoints (the head is checkpointed first), for offline verification. */
  auditLog: {
    method: 'GET',
    url: '/v1/admin/audit',
    schema: {
      response: withErrors({
        type: 'object',
        required: ['format', 'entries', 'checkpoints'],
        properties: { format: { type: 'integer' }, entries: { type: 'array', items: { type: 'string' } }, checkpoints: { type: 'array', items: { type: 'string' } } },
        additionalProperties: false,
      }),
    },
  },
  /**
   * The operator's policy refused a session on one of its keys: tell the coordinator, so the other
   * nodes fail fast. An operation on that key (gate: the tenant's key, policy 'decline', audited).
   */
  decline: {
    method: 'POST',
    url: '/v1/sessions/decline',
    schema: {
      body: {
        type: 'object',
        required: ['sessionId', 'keyId', 'operation'],
        properties: { sessionId, keyId: id, operation: { type: 'string', enum: [...OPERATIONS] }, version },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['sessionId', 'declined'],
        properties: { sessionId: { type: 'string' }, declined: { type: 'boolean' } },
        additionalProperties: false,
      }),
    },
  },
  /** What this node holds of a key's commits: its staged change, versions and certificates. */
  commitStatus: {
    method: 'GET',
    url: '/v1/keys/:keyId/commits',
    schema: {
      params: keyParams,
      response: withErrors({
        type: 'object',
        required: ['keyId', 'versions', 'certificates'],
        properties: {
          keyId: id,
          staged: {
            type: 'object',
            required: ['sessionId', 'tenant', 'operation', 'version', 'resultDigest', 'released'],
            properties: {
              sessionId: { type: 'string' },
              tenant: id,
              operation: { type: 'string' },
              version,
              resultDigest: { type: 'string' },
              released: { type: 'boolean' },
              voters: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 255 } },
            },
            additionalProperties: false,
          },
          versions: {
            type: 'array',
            items: {
              type: 'object',
              required: ['version', 'epoch', 'state'],
              properties: {
                version,
                epoch: { type: 'integer' },
                state: { type: 'string' },
                certSessionId: { type: 'string' },
                nodes: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 255 } },
              },
              additionalProperties: false,
            },
          },
          certificates: {
            type: 'array',
            items: {
              type: 'object',
              required: ['sessionId', 'certificate'],
              properties: { sessionId: { type: 'string' }, certificate: { type: 'string' } },
              additionalProperties: false,
            },
          },
        },
        additionalProperties: false,
      }),
    },
  },
  /** Repair step 1: this node's signed attestation that it staged the change of a session. */
  attestStaged: {
    method: 'POST',
    url: '/v1/keys/:keyId/staged/attest',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['sessionId'], properties: { sessionId }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['sessionId', 'node', 'attestation'],
        properties: { sessionId: { type: 'string' }, node: index, attestation: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  /** Repair step 2: release this node's stored vote, given every node's attestation that it staged the same result. */
  releaseVote: {
    method: 'POST',
    url: '/v1/keys/:keyId/staged/release',
    schema: {
      params: keyParams,
      body: {
        type: 'object',
        required: ['sessionId', 'attestations'],
        properties: {
          sessionId,
          attestations: {
            type: 'array',
            minItems: 2,
            maxItems: 255,
            description: 'a list of {node, attestation}, one per node',
            items: {
              type: 'object',
              required: ['node', 'attestation'],
              properties: { node: index, attestation: hex(1, 8192) },
              additionalProperties: false,
            },
          },
        },
        additionalProperties: false,
      },
      response: withErrors({
        type: 'object',
        required: ['sessionId', 'node', 'vote'],
        properties: { sessionId: { type: 'string' }, node: index, vote: { type: 'string' } },
        additionalProperties: false,
      }),
    },
  },
  /** Drop a staged change whose vote this node never released (some node never staged it). */
  dropStaged: {
    method: 'POST',
    url: '/v1/keys/:keyId/staged/drop',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['sessionId'], properties: { sessionId }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['sessionId', 'dropped'],
        properties: { sessionId: { type: 'string' }, dropped: { type: 'boolean' } },
        additionalProperties: false,
      }),
    },
  },
  /** Finish a commit this node missed from its certificate (verified against the membership). */
  repair: {
    method: 'POST',
    url: '/v1/keys/:keyId/repair',
    schema: {
      params: keyParams,
      body: { type: 'object', required: ['certificate'], properties: { certificate: hex(1, 1 << 20) }, additionalProperties: false },
      response: withErrors({
        type: 'object',
        required: ['keyId', 'sessionId', 'operation', 'version', 'outcome'],
        properties: {
          keyId: id,
          sessionId: { type: 'string' },
          operation: { type: 'string' },
          version,
          outcome: { type: 'string', enum: ['committed', 'already-committed'] },
        },
        additionalProperties: false,
      }),
    },
  },
} as const;
