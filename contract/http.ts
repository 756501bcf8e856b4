/**
 * The SDK-facing HTTP API: one request and one response schema per route, written once in TypeBox; each
 * TypeScript type is derived from its schema (Static), so the type and the JSON schema the node validates
 * with (and docs/openapi.json describes) cannot disagree. Bytes are lowercase hex. No response type has a
 * field that can hold share or private-key material; test/integration/api-surface.test.ts enumerates
 * every route and checks that.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { BUNDLE_FORMAT, BUNDLE_VERSION, RESHARED_BUNDLE_VERSION } from '../core/bundle.js';
import { OPERATIONS } from '../core/session.js';
import { SUITE_IDS } from '../core/suites.js';
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
/** A closed list of strings: {type: 'string', enum} (a wrong type is reported as such, "got an integer"). */
const stringEnum = <const V extends string>(values: readonly V[]) => Type.Enum([...values], { type: 'string' });
const closedObject = <P extends Record<string, TSchema>>(properties: P, options: Record<string, unknown> = {}) =>
  Type.Object(properties, { ...options, additionalProperties: false });
const hex = (min: number, max: number) =>
  Type.String({
    pattern: '^([0-9a-fA-F]{2})*$',
    minLength: min * 2,
    maxLength: max * 2,
    description: min === max ? `${min} bytes as hex` : `hex, ${min} to ${max} bytes`,
  });
const id = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$',
  description: 'an id: 1 to 128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
});
const index = Type.Integer({ minimum: 1, maximum: 255, description: 'a node index, an integer from 1 to 255' });
const players = Type.Array(index, { minItems: 2, maxItems: 255, uniqueItems: true, description: 'a list of 2 to 255 distinct node indexes' });
const sessionId = hex(16, 16);
const suite = stringEnum(SUITE_IDS);
const version = Type.Integer({ minimum: 1, maximum: MAX_VERSION, description: `a key version, an integer from 1 to ${MAX_VERSION}` });
const threshold = Type.Integer({ minimum: 2, maximum: 255, description: 'a threshold, an integer from 2 to 255' });
/** Checked in full by the node (core/derive.ts parseDerivationPath), whose errors say what is wrong (e.g. a hardened step). */
const derivationPath = Type.String({ minLength: 1, maxLength: 2900, description: 'a non-hardened BIP-32 path such as m/0/5' });
const keyState = stringEnum(KEY_STATES);
/** A key version in a query string (text; node/http/api.ts parseDecimal turns it into a number). */
const versionText = Type.String({ description: `a key version in decimal, 1 to ${MAX_VERSION}` });
const epochSchema = Type.Integer({ minimum: 0, maximum: MAX_VERSION, description: `a key epoch, an integer from 0 to ${MAX_VERSION}` });
const time = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A duration in milliseconds given by a caller (each use checks its own narrower bounds too). */
const durationMs = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'a duration in milliseconds, a positive integer' });
const str = () => Type.String();
const int = () => Type.Integer();
const bool = () => Type.Boolean();
const strings = () => Type.Array(Type.String());
const opt = Type.Optional;

export const errorSchema = closedObject({
  code: str(),
  message: str(),
  culprits: opt(Type.Array(index)),
  nodes: opt(Type.Array(index)),
  /** Transferable evidence against the culprits (hex of core/evidence.ts encodeEvidence); the SDK re-checks it. */
  evidence: opt(str()),
}, { description: 'An error: its code (e.g. BAD_INPUT, UNAUTHORIZED, NOT_FOUND, POLICY_DENIED, UNAVAILABLE) and message; culprits and evidence name misbehaving nodes' });
export type ErrorResponse = Static<typeof errorSchema>;

const publicPackageSchema = closedObject({
  suite,
  threshold: int(),
  parties: int(),
  epoch: int(),
  commitments: strings(),
  verifyingShares: strings(),
  /** The committee (node indices holding shares, ascending) when it is not 1..parties (core/committee.ts). */
  indices: opt(Type.Array(Type.Integer())),
});
export type PublicKeyPackageJson = Static<typeof publicPackageSchema>;

const rotationSchema = closedObject({
  periodMs: int(),
  /**
   * none (not active), ok, warning (due soon: the nodes log a warning), due (the nodes are rotating it),
   * overdue (due, and this node's attempts have not rotated it: the fields below say why).
   */
  status: stringEnum(['none', 'ok', 'warning', 'due', 'overdue']),
  dueAt: opt(time),
  /** overdue only: scheduled attempts made, when the last began, why it failed (one line), when the next begins. */
  attempts: opt(int()),
  lastAttemptAt: opt(time),
  lastError: opt(str()),
  nextAttemptAt: opt(time),
});
export type RotationInfo = Static<typeof rotationSchema>;

const keyInfoSchema = closedObject({
  keyId: id,
  version,
  suite,
  /**
   * What the suite's signatures are (core/suites.ts SUITE_SCHEMES), e.g. "FROST Schnorr (RFC 9591), not
   * ECDSA" for secp256k1 and p256: standard ECDSA verifiers do not accept them.
   */
  scheme: str(),
  /** The suite's standard public-key encoding, hex. */
  publicKey: str(),
  threshold: int(),
  parties: int(),
  epoch: int(),
  /** core/lifecycle.ts: active | retired | archived | destroyed. */
  state: keyState,
  exportable: bool(),
  publicPackage: publicPackageSchema,
  createdAt: time,
  /** Only when the key carries a rotation period: where this version stands (core/lifecycle.ts rotationStatus). */
  rotation: opt(rotationSchema),
  /**
   * secp256k1, bip340 and ed25519 keys made since derivation exists (core/derive.ts): the 32-byte chain
   * code, hex, made at keygen from the DKG transcript. Child keys: sign with `path`.
   */
  chainCode: opt(hex(32, 32)),
  /** secp256k1 and bip340 only: the BIP-32 extended public key (mainnet "xpub") of the key. */
  xpub: opt(Type.String({ maxLength: 120 })),
});
export type KeyInfo = Static<typeof keyInfoSchema>;
/** GET /v1/keys: every version of every key of the caller's tenant, by keyId then version. */
const listKeysResponseSchema = closedObject({ keys: Type.Array(keyInfoSchema) });
export type ListKeysResponse = Static<typeof listKeysResponseSchema>;

const nodeInfoSchema = closedObject({
  index,
  parties: int(),
  identityPublicKey: str(),
  /** ML-KEM-768 public key that shares and results can be wrapped to for this node. */
  importPublicKey: str(),
  ready: bool(),
  online: Type.Array(index),
  /**
   * The backend doing each group's arithmetic, by group name, e.g. {"edwards25519": "sodium-native",
   * "secp256k1": "libsecp256k1 (native)", "P-256": "noble"}. Closed (api-surface: no open response
   * object): one backend name per group (core/suites.ts groupBackendNames).
   */
  groupBackends: closedObject({ edwards25519: str(), secp256k1: str(), 'P-256': str() }),
  /**
   * How this node protects shares and secrets at rest (node/store/kek.ts atRestProtection), for
   * `tessera keys report`: `provider`, where its KEK comes from ("env": TESSERA_KEK, "file": a key
   * file; a later KEK provider names itself here), `keyBits`, the KEK's length, and the record AEAD,
   * KDF and MAC the store uses under it. No key material. Absent from nodes older than this field.
   */
  atRest: opt(closedObject({ provider: str(), keyBits: int(), recordAead: str(), keyDerivation: str(), recordMac: str() })),
});
export type NodeInfo = Static<typeof nodeInfoSchema>;

const keygenRequestSchema = closedObject({
  sessionId,
  keyId: id,
  suite,
  threshold,
  exportable: opt(bool()),
  /** Rotate the key this long after each version is created (nodes enforce it). Part of the session digest. */
  rotationPeriodMs: opt(
    Type.Integer({ minimum: 1, maximum: MAX_ROTATION_PERIOD_MS, description: `a rotation period in milliseconds, an integer up to ${MAX_ROTATION_PERIOD_MS}` }),
  ),
});
export type KeygenRequest = Static<typeof keygenRequestSchema>;

const signRequestSchema = closedObject({
  sessionId,
  message: hex(0, 1 << 20),
  players,
  version: opt(version),
  /**
   * Sign with a child key (core/derive.ts): a non-hardened BIP-32 path such as "m/0/5" (secp256k1,
   * bip340, ed25519 keys). Part of the session digest: every signer must be given the same path.
   */
  path: opt(derivationPath),
  /**
   * Threshold ECDSA keys only: `message` is already the digest to sign (16..64 bytes, e.g. Keccak-256
   * or double SHA-256). Without it the node signs SHA-256(message). Part of the session digest.
   */
  prehashed: opt(bool()),
});
export type SignRequest = Static<typeof signRequestSchema>;
const signResponseSchema = closedObject({
  keyId: id,
  version,
  /**
   * The suite's signature, hex. Threshold ECDSA keys: the compact r ‖ s (IEEE P1363, 64 bytes), low-s
   * normalised; `der` and `recoveryId` give the other forms.
   */
  signature: str(),
  /** Threshold ECDSA keys: the same signature DER-encoded (SEC 1 §C.5; OpenSSL's form), hex. */
  der: opt(str()),
  /** Threshold ECDSA keys: the SEC 1 §4.1.6 recovery id (0..3), e.g. Ethereum's v - 27. */
  recoveryId: opt(Type.Integer({ minimum: 0, maximum: 3 })),
});
export type SignResponse = Static<typeof signResponseSchema>;

const decapsulateRequestSchema = closedObject({
  sessionId,
  enc: hex(1, 256),
  players,
  /** ML-KEM-768 public key of the receiver that alone can combine the partial results. */
  receiverPublicKey: hex(1184, 1216),
  version: opt(version),
});
export type DecapsulateRequest = Static<typeof decapsulateRequestSchema>;
const decapsulateResponseSchema = closedObject({
  keyId: id,
  version,
  index,
  /** The partial decapsulation with its DLEQ proof, HPKE-wrapped to receiverPublicKey. */
  wrappedPartial: closedObject({ kem: int(), enc: str(), ciphertext: str() }),
  publicPackage: publicPackageSchema,
});
export type DecapsulateResponse = Static<typeof decapsulateResponseSchema>;

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
const presignCommitmentSchema = closedObject({
  /** The entry's index in its pool (unique per pool). */
  index: int(),
  hiding: str(),
  binding: str(),
});
export type PresignCommitmentJson = Static<typeof presignCommitmentSchema>;
const presignaturesRequestSchema = closedObject({
  count: Type.Integer({ minimum: 1, maximum: MAX_PRESIGN_BATCH, description: `a count, an integer from 1 to ${MAX_PRESIGN_BATCH}` }),
  version: opt(version),
});
export type PresignaturesRequest = Static<typeof presignaturesRequestSchema>;
const presignaturesResponseSchema = closedObject({
  /** The caller's tenant (from its API key): bound by the batch signature. */
  tenant: id,
  keyId: id,
  version,
  epoch: int(),
  suite,
  node: index,
  /** 16 random bytes, new for every pool; unknown to the node after a restart. */
  poolId: str(),
  commitments: Type.Array(presignCommitmentSchema),
  /** ML-DSA-65 signature of the node identity over core/presign.ts presignBatchSignedBytes. */
  signature: str(),
});
export type PresignaturesResponse = Static<typeof presignaturesResponseSchema>;
/** One signer's entry in a presigned commitment list: which node, which pool entry, and its commitments; points are checked by the node, not here. */
const presignedCommitment = closedObject({
  node: index,
  poolId: hex(16, 16),
  index: Type.Integer({ minimum: 0, maximum: MAX_VERSION, description: 'a pool entry index, an integer from 0 to 4294967295' }),
  hiding: hex(32, 33),
  binding: hex(32, 33),
});
export type PresignedCommitmentJson = Static<typeof presignedCommitment>;
const presignedItemProperties = {
  message: hex(0, 1 << 20),
  commitments: Type.Array(presignedCommitment, { minItems: 2, maxItems: 255, description: 'a list of 2 to 255 signer commitments' }),
};
/** One message and the commitment list chosen for it (one entry per signer, at least the threshold). */
const presignedItemSchema = closedObject(presignedItemProperties);
export type PresignedItemJson = Static<typeof presignedItemSchema>;
/** Ask this node for its signature share over one message with a presigned commitment list: one round trip. */
const signShareRequestSchema = closedObject({
  ...presignedItemProperties,
  version,
  epoch: epochSchema,
  /**
   * Sign with the child key of this non-hardened BIP-32 path (core/derive.ts), as in SignRequest. No
   * session digest binds it here: the aggregator gives every player the same path, and shares made for
   * different paths do not combine into a signature (each nonce still signs once).
   */
  path: opt(derivationPath),
});
export type SignShareRequest = Static<typeof signShareRequestSchema>;
const signShareResponseSchema = closedObject({
  keyId: id,
  version,
  epoch: int(),
  node: index,
  /** The RFC 9591 §5.2 signature share (SerializeScalar). Alone it reveals nothing about the key share. */
  share: str(),
  /**
   * The group commitment R this node computed for the list, as the signature encodes it: lets the
   * aggregator skip recomputing R; it keeps the signature only if it verifies (never evidence).
   */
  commitment: str(),
});
export type SignShareResponse = Static<typeof signShareResponseSchema>;
/** Signature shares over up to MAX_SIGN_BATCH messages with one key, each with its own commitment list. */
const signBatchRequestSchema = closedObject({
  keyId: id,
  version,
  epoch: epochSchema,
  items: Type.Array(presignedItemSchema, {
    minItems: 1,
    maxItems: MAX_SIGN_BATCH,
    description: `a list of 1 to ${MAX_SIGN_BATCH} messages, each with its commitment list`,
  }),
});
export type SignBatchRequest = Static<typeof signBatchRequestSchema>;
const signBatchResponseSchema = closedObject({
  keyId: id,
  version,
  epoch: int(),
  node: index,
  /** shares[i] is the share over items[i]. */
  shares: strings(),
  /** commitments[i] is the group commitment R of items[i] (SignShareResponse.commitment). */
  commitments: strings(),
});
export type SignBatchResponse = Static<typeof signBatchResponseSchema>;

/**
 * Threshold ECDSA presignatures (issue 12, "Presigning"; node/presign/ecdsa-pools.ts): DKLs23's rounds
 * 1-2 and the message-free part of round 3 run ahead in a session among the signers (a 'sign' session:
 * the policy decides it as a signing), which leaves `count` presignatures at every signer, in memory
 * only, each under an id that is the same at every signer. Then one round signs: each signer answers
 * (u_i, w_i) for the message with one id, after deleting that presignature, and the caller combines.
 */
export { MAX_ECDSA_PRESIGN_BATCH };
const ecdsaPresignaturesRequestSchema = closedObject({
  sessionId,
  /** The signers (at least the threshold); the presignatures sign only with exactly this set. */
  players,
  /** 1..MAX_ECDSA_PRESIGN_BATCH. */
  count: Type.Integer({ minimum: 1, maximum: MAX_ECDSA_PRESIGN_BATCH, description: `a count, an integer from 1 to ${MAX_ECDSA_PRESIGN_BATCH}` }),
  version: opt(version),
});
export type EcdsaPresignaturesRequest = Static<typeof ecdsaPresignaturesRequestSchema>;
const ecdsaPresignatureSchema = closedObject({
  /** 16 bytes, hex: the same at every signer. */
  id: str(),
  /** R = Σ R_j (SEC 1 compressed, hex): public; r = x(R) mod n is the signature's r. */
  R: str(),
});
export type EcdsaPresignatureJson = Static<typeof ecdsaPresignatureSchema>;
const ecdsaPresignaturesResponseSchema = closedObject({
  keyId: id,
  version,
  epoch: int(),
  node: index,
  /** The signer set, sorted. */
  players: Type.Array(Type.Integer()),
  presignatures: Type.Array(ecdsaPresignatureSchema),
});
export type EcdsaPresignaturesResponse = Static<typeof ecdsaPresignaturesResponseSchema>;
const ecdsaSignShareRequestSchema = closedObject({
  presignatureId: hex(16, 16),
  message: hex(0, 1 << 20),
  /** As SignRequest.prehashed: `message` is the digest to sign. Default: SHA-256(message). */
  prehashed: opt(bool()),
  version,
  epoch: epochSchema,
  /** The signer set the presignature was made for (every signer is sent the same). */
  players,
});
export type EcdsaSignShareRequest = Static<typeof ecdsaSignShareRequestSchema>;
const ecdsaSignShareResponseSchema = closedObject({
  keyId: id,
  version,
  epoch: int(),
  node: index,
  presignatureId: str(),
  /** DKLs23 round-3 broadcast (Protocol 3.6 step 9): u_i and w_i, 32-byte scalars, hex. Public by design. */
  u: str(),
  w: str(),
});
export type EcdsaSignShareResponse = Static<typeof ecdsaSignShareResponseSchema>;

/** Decline a session the operator refused: the key and operation it was asked for, and its session id. */
const declineRequestSchema = closedObject({
  sessionId,
  keyId: id,
  /** The declined session's operation: keygen and import name a key that does not exist yet. */
  operation: stringEnum(OPERATIONS),
  version: opt(version),
});
export type DeclineRequest = Static<typeof declineRequestSchema>;
const declineResponseSchema = closedObject({ sessionId: str(), declined: bool() });
export type DeclineResponse = Static<typeof declineResponseSchema>;

const nodeList = () => Type.Array(Type.Integer({ minimum: 1, maximum: 255 }));
/** What a node holds of a key's commits (node/sessions/commit.ts): for `tessera repair`. */
const commitStatusResponseSchema = closedObject({
  keyId: id,
  /**
   * A change staged on this node and not yet committed (voted: only its certificate can finish it).
   * `voters`: the nodes whose votes its certificate needs (the session's players); absent for a change staged before committees (every node).
   */
  staged: opt(
    closedObject({
      sessionId: str(),
      tenant: id,
      operation: str(),
      version,
      resultDigest: str(),
      released: bool(),
      voters: opt(nodeList()),
    }),
  ),
  /** Every version this node holds, with the session whose certificate made it what it is, and its committee (`nodes`, the key's holders). */
  versions: Type.Array(closedObject({ version, epoch: int(), state: str(), certSessionId: opt(str()), nodes: opt(nodeList()) })),
  /** The commit certificates this node stores for the key (hex, core/commit.ts encodeCertificate). */
  certificates: Type.Array(closedObject({ sessionId: str(), certificate: str() })),
});
export type CommitStatusResponse = Static<typeof commitStatusResponseSchema>;

/** Repair of a staged change (sdk/client.ts Cluster.repair): attest it, release the vote, or drop it. */
const stagedSessionRequestSchema = closedObject({ sessionId });
const releaseVoteRequestSchema = closedObject({
  sessionId,
  /** For release: every node's attestation that it staged the same result. */
  attestations: Type.Array(closedObject({ node: index, attestation: hex(1, 8192) }), {
    minItems: 2,
    maxItems: 255,
    description: 'a list of {node, attestation}, one per node',
  }),
});
/** What one handler takes for attest, release and drop: attestations only with release. */
export type StagedActionRequest = Static<typeof stagedSessionRequestSchema> & Partial<Static<typeof releaseVoteRequestSchema>>;
const stagedAttestResponseSchema = closedObject({ sessionId: str(), node: index, attestation: str() });
export type StagedAttestResponse = Static<typeof stagedAttestResponseSchema>;
const stagedReleaseResponseSchema = closedObject({ sessionId: str(), node: index, vote: str() });
export type StagedReleaseResponse = Static<typeof stagedReleaseResponseSchema>;
const stagedDropResponseSchema = closedObject({ sessionId: str(), dropped: bool() });
export type StagedDropResponse = Static<typeof stagedDropResponseSchema>;
/** Hand a node a commit certificate (from another node) to finish a commit it missed. */
const repairRequestSchema = closedObject({ certificate: hex(1, 1 << 20) });
export type RepairRequest = Static<typeof repairRequestSchema>;
const repairResponseSchema = closedObject({
  keyId: id,
  sessionId: str(),
  operation: str(),
  version,
  outcome: stringEnum(['committed', 'already-committed']),
});
export type RepairResponse = Static<typeof repairResponseSchema>;

/**
 * A committee or dealer set in a request: 2..255 distinct node indices (a threshold is at least 2).
 * Ascending order and threshold <= size are checked by the node (core/committee.ts checkCommittee).
 */
const committee = (what: string) =>
  Type.Array(index, { minItems: 2, maxItems: 255, uniqueItems: true, description: `${what}: a list of 2 to 255 distinct node indexes` });
/**
 * Reshare a key version to a new committee (issue 13): dealers of the old committee deal sub-shares of
 * their shares to `nodes` under threshold `threshold`; the public key is unchanged. Every player
 * (dealers ∪ nodes) is asked with the same request; a node in `nodes` that holds no record of the key
 * yet joins as a receiver.
 */
const reshareRequestSchema = closedObject({
  sessionId,
  /** The key's suite: a node joining the committee holds no record of the key yet, and the session binds it. */
  suite,
  /** The version to reshare (required: a joining node has no record to take a default from). */
  version,
  /** The new threshold t'. */
  threshold,
  /** The new committee: the node indices that will hold shares, ascending. */
  nodes: committee('the new committee'),
  /** The old holders that deal (at least the old threshold of them), ascending. */
  dealers: committee('the dealers'),
  /** Hex of core/commit.ts publicPackageDigest of the committed old package: every player reshares the same key state. */
  oldPackageDigest: hex(32, 32),
});
export type ReshareRequest = Static<typeof reshareRequestSchema>;
const reshareResponseSchema = closedObject({
  keyId: id,
  version,
  /** The node that answers. */
  node: index,
  /** The new epoch (old epoch + 1). */
  epoch: int(),
  threshold: int(),
  /** The new committee. */
  indices: Type.Array(index),
  /** The new public package (same group key). */
  publicPackage: publicPackageSchema,
  /** The reshare's commit certificate, hex of core/commit.ts encodeCertificate: what a handoff hands on. */
  certificate: str(),
  role: stringEnum(['dealer', 'receiver', 'dealer+receiver']),
});
export type ReshareResponse = Static<typeof reshareResponseSchema>;
const pointList = Type.Array(hex(32, 65), { minItems: 1, maxItems: 255 });
/**
 * A public key package given in a request (reshare handoff): shape and bounds only; the node checks the
 * points and that it is the package the certificate commits.
 */
const publicPackageInputSchema = closedObject({
  suite,
  threshold,
  parties: Type.Integer({ minimum: 2, maximum: 255, description: 'a party count, an integer from 2 to 255' }),
  epoch: epochSchema,
  commitments: pointList,
  verifyingShares: pointList,
  indices: opt(committee('the committee')),
});
/** After a reshare: an old holder that was not in the session is handed the certificate and the new package, and erases its share. */
const reshareHandoffRequestSchema = closedObject({ certificate: hex(1, 1 << 20), publicPackage: publicPackageInputSchema });
export type ReshareHandoffRequest = Static<typeof reshareHandoffRequestSchema>;
const reshareHandoffResponseSchema = closedObject({
  keyId: id,
  version,
  node: index,
  outcome: stringEnum(['erased', 'already-committed', 'not-a-holder']),
});
export type ReshareHandoffResponse = Static<typeof reshareHandoffResponseSchema>;

/**
 * An admin API key may act for any tenant of its node by naming it in this header (the SDK's
 * `Cluster.forTenant`): a membership change reshares every key of every tenant (issue 13). The
 * tenant's own policy still decides; the audit names the admin key. A tenant key that sends it is refused.
 */
export const ACT_AS_TENANT_HEADER = 'x-tessera-tenant';

const membershipEpoch = Type.Integer({ minimum: 0, maximum: 0xfffffffe, description: 'a membership epoch, an integer from 0' });
/** One member of the cluster: its node index and ML-DSA-65 identity public key (hex, 1952 bytes). */
const memberSchema = closedObject({ index, identityPublicKey: hex(1952, 1952) });
export type MemberJson = Static<typeof memberSchema>;
const membersInput = Type.Array(memberSchema, { minItems: 2, maxItems: 255, description: 'the members: 2 to 255 of { index, identityPublicKey }' });
/** The node's committed cluster membership (core/membership.ts). */
const membershipProperties = {
  epoch: membershipEpoch,
  members: Type.Array(memberSchema),
  /** Hex of core/membership.ts membershipDigest. */
  digest: hex(32, 32),
  /**
   * Whether the node holds this membership's certificate (a change it committed). False for the one its
   * config file gave: the cluster's first, or — at an epoch above the other nodes' — the membership a
   * node being added or repaired was started with before the change is committed.
   */
  committed: bool(),
};
const membershipSchema = closedObject(membershipProperties);
export type MembershipResponse = Static<typeof membershipSchema>;
/**
 * Change the cluster's membership to `members` at `epoch` (the current epoch + 1): a certified session
 * of every member whose identity the change keeps; each one's operator asks its own node with the same request.
 */
const changeMembershipRequestSchema = closedObject({ sessionId, epoch: membershipEpoch, members: membersInput });
export type ChangeMembershipRequest = Static<typeof changeMembershipRequestSchema>;
const changeMembershipResponseSchema = closedObject({
  ...membershipProperties,
  node: index,
  /** Hex of the change's commit certificate (core/commit.ts encodeCertificate). */
  certificate: str(),
  added: Type.Array(index),
  removed: Type.Array(index),
  replaced: Type.Array(index),
  unchanged: Type.Array(index),
});
export type ChangeMembershipResponse = Static<typeof changeMembershipResponseSchema>;
/** Hand a node the certificate of a membership change it missed (it checks it against its own membership). */
const applyMembershipRequestSchema = closedObject({ epoch: membershipEpoch, members: membersInput, certificate: hex(1, 1 << 20) });
export type ApplyMembershipRequest = Static<typeof applyMembershipRequestSchema>;
const applyMembershipResponseSchema = closedObject({ ...membershipProperties, node: index, outcome: stringEnum(['committed', 'already-committed']) });
export type ApplyMembershipResponse = Static<typeof applyMembershipResponseSchema>;
/** Every membership change this node committed, oldest first, with its certificate. */
const membershipHistoryResponseSchema = closedObject({
  changes: Type.Array(closedObject({ epoch: membershipEpoch, members: Type.Array(memberSchema), certificate: str() })),
});
export type MembershipHistoryResponse = Static<typeof membershipHistoryResponseSchema>;
const tenantSchema = closedObject({ name: id, createdAt: opt(time) });
export type TenantResponse = Static<typeof tenantSchema>;
const tenantListResponseSchema = closedObject({ tenants: Type.Array(tenantSchema) });
export type TenantListResponse = Static<typeof tenantListResponseSchema>;
const refreshRequestSchema = closedObject({ sessionId, version: opt(version) });
export type RefreshRequest = Static<typeof refreshRequestSchema>;
const refreshResponseSchema = closedObject({ keyId: id, version, epoch: int() });
export type RefreshResponse = Static<typeof refreshResponseSchema>;

const verifyRequestSchema = closedObject({
  message: hex(0, 1 << 20),
  /** The suite's signature, hex; threshold ECDSA keys: compact r ‖ s (64 bytes) or DER. */
  signature: hex(1, 256),
  version: opt(version),
  /** Threshold ECDSA keys only: `message` is the signed digest itself (as SignRequest.prehashed). */
  prehashed: opt(bool()),
});
export type VerifyRequest = Static<typeof verifyRequestSchema>;
const verifyResponseSchema = closedObject({ keyId: id, version, valid: bool() });
export type VerifyResponse = Static<typeof verifyResponseSchema>;
const rotateRequestSchema = closedObject({
  sessionId,
  /** The version to rotate out; default the newest active one. It is retired once the new one exists. */
  version: opt(version),
});
export type RotateRequest = Static<typeof rotateRequestSchema>;
const rotateResponseSchema = closedObject({
  keyId: id,
  /** The new version (made by DKG under the same key id). */
  version,
  previousVersion: version,
  suite,
  publicKey: str(),
});
export type RotateResponse = Static<typeof rotateResponseSchema>;
/** A lifecycle transition (core/lifecycle.ts STATE_TRANSITIONS): retire, archive, activate or destroy one version. */
const setStateRequestSchema = closedObject({ sessionId, version, state: keyState });
export type SetStateRequest = Static<typeof setStateRequestSchema>;

// ---- administration (admin API keys only, node/governance/tenants.ts)
const createTenantRequestSchema = closedObject({ name: id });
const createApiKeyRequestSchema = closedObject({ tenant: id, role: opt(stringEnum(['tenant', 'admin'])) });
export type CreateApiKeyRequest = Static<typeof createApiKeyRequestSchema>;
const apiKeyInfoProperties = {
  id,
  tenant: id,
  role: stringEnum(['tenant', 'admin']),
  source: stringEnum(['store', 'config']),
  createdAt: opt(time),
  revokedAt: opt(time),
};
const apiKeyInfoSchema = closedObject(apiKeyInfoProperties);
export type ApiKeyInfoJson = Static<typeof apiKeyInfoSchema>;
/** The new API key is in this response and nowhere else: the node keeps only its SHA-256. */
const createApiKeyResponseSchema = closedObject({ ...apiKeyInfoProperties, apiKey: str() });
export type CreateApiKeyResponse = Static<typeof createApiKeyResponseSchema>;
const listApiKeysResponseSchema = closedObject({ apiKeys: Type.Array(apiKeyInfoSchema) });
export type ListApiKeysResponse = Static<typeof listApiKeysResponseSchema>;
const policyOperations = Type.Array(stringEnum(POLICY_OPERATIONS));
const policyRuleSchema = closedObject({
  id: str(),
  type: stringEnum(['allow-operations', 'deny', 'quota', 'rate', 'preapprove-rotation']),
  scope: opt(closedObject({ tenant: opt(id), apiKeyId: opt(id), keyId: opt(id) })),
  operations: opt(Type.Immutable(policyOperations)),
  per: opt(stringEnum(['tenant', 'apiKey', 'key'])),
  limit: opt(int()),
  periodMs: opt(int()),
  intervalMs: opt(int()),
  /** preapprove-rotation: when the pre-approval ends (ms since the Unix epoch, the node's clock). */
  until: opt(time),
});
const failOpenSchema = closedObject({ active: bool(), until: opt(time), enabledBy: opt(id) });
export type FailOpenJson = Static<typeof failOpenSchema>;
const policySchema = closedObject({ version: int(), rules: Type.Array(policyRuleSchema), updatedAt: time, updatedBy: opt(id), failOpen: failOpenSchema });
export type PolicyResponse = Static<typeof policySchema>;
/** Shape only; node/governance/policy.ts validateRules checks each rule and names what is wrong. */
const setPolicyRequestSchema = closedObject({ rules: Type.Unsafe<unknown[]>({ type: 'array', maxItems: 1000 }) });
const enableFailOpenRequestSchema = closedObject({ durationMs: opt(durationMs) });
const emptyRequestSchema = closedObject({});
/** A KEK's public id (node/store/kek.ts Kek.id): never key material. */
const kekIdSchema = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' });
/** POST /v1/admin/kek/rotate (node/store/kek-rotation.ts): the old and new KEK ids, records looked at and moved. */
const kekRotateResponseSchema = closedObject({ from: kekIdSchema, to: kekIdSchema, records: int(), moved: int(), resumed: bool() });
export type KekRotateResponse = Static<typeof kekRotateResponseSchema>;

const wrappedShareSchema = closedObject({
  index,
  kem: stringEnum(WRAP_KEMS),
  wrappingKeyFingerprint: hex(32, 32),
  enc: hex(1, 2048),
  ciphertext: hex(1, 256),
});
/** A version 2 bundle's dealer: its commitments and one sealed sub-share per destination node. */
const dealtSchema = closedObject({ commitments: pointList, wrappedShares: Type.Array(wrappedShareSchema, { minItems: 2, maxItems: 255 }) });

const exportRequestSchema = closedObject({
  sessionId,
  /**
   * ML-KEM-768 or X-Wing public keys: one for every share, or one per share (node i uses [i - 1]);
   * with `reshare`, one per destination node (destination node j's at [j - 1]) or one for all.
   */
  wrappingKeys: Type.Array(hex(1184, 1216), { minItems: 1, maxItems: 255 }),
  version: opt(version),
  /**
   * A destination of another size (a version 2 bundle, core/bundle.ts): every node deals its
   * re-randomised share to destination nodes 1..parties with threshold `threshold` (core/reshare.ts).
   */
  reshare: opt(
    closedObject({ threshold, parties: Type.Integer({ minimum: 2, maximum: 255, description: 'the destination node count, an integer from 2 to 255' }) }),
  ),
});
export type ExportRequest = Static<typeof exportRequestSchema>;
const exportResponseSchema = closedObject({
  keyId: id,
  version,
  index,
  /** This node's re-randomised share, HPKE-wrapped to its wrapping key (core/bundle.ts). Absent with `reshare`. */
  wrappedShare: opt(wrappedShareSchema),
  /** With `reshare`: this node's commitments and its sub-share for each destination node, sealed to that node's key. */
  dealt: opt(dealtSchema),
  /** The public package of the re-randomised shares (one epoch above the cluster's, never committed). */
  publicPackage: publicPackageSchema,
});
export type ExportResponse = Static<typeof exportResponseSchema>;
/**
 * Shape only; core/bundle.ts parseBundle checks everything else before any use, including which
 * fields each version needs (version 1: wrappedShares; version 2: source and dealers).
 */
const bundleSchema = closedObject({
  format: stringEnum([BUNDLE_FORMAT]),
  version: Type.Enum([BUNDLE_VERSION, RESHARED_BUNDLE_VERSION], { type: 'integer' }),
  keyId: id,
  keyVersion: version,
  suite,
  threshold,
  parties: Type.Integer({ minimum: 2, maximum: 255 }),
  epoch: Type.Integer({ minimum: 0, maximum: MAX_VERSION }),
  publicKey: hex(32, 65),
  commitments: pointList,
  verifyingShares: pointList,
  wrappedShares: opt(Type.Array(wrappedShareSchema, { minItems: 1, maxItems: 255 })),
  source: opt(
    closedObject({
      threshold,
      parties: Type.Integer({ minimum: 2, maximum: 255 }),
      indices: opt(players),
      epoch: Type.Integer({ minimum: 0, maximum: MAX_VERSION }),
      commitments: pointList,
      verifyingShares: pointList,
    }),
  ),
  dealers: opt(
    Type.Array(closedObject({ index, commitments: pointList, wrappedShares: Type.Array(wrappedShareSchema, { minItems: 2, maxItems: 255 }) }), {
      minItems: 2,
      maxItems: 255,
    }),
  ),
});
const importRequestSchema = closedObject({
  sessionId,
  /** The key id to store under; default the bundle's. */
  keyId: opt(id),
  /** A version 1 bundle (same size) or a version 2 bundle dealt for this cluster's size. */
  bundle: bundleSchema,
  /** Fixed at import and never changed; default false. */
  exportable: opt(bool()),
  /** The destination's threshold; when given, the bundle's must equal it. */
  threshold: opt(threshold),
});
export type ImportRequest = Static<typeof importRequestSchema>;

const keyParams = closedObject({ keyId: id });
const apiKeyParams = closedObject({ id });

/** For documentation: the closed lists an entry's words come from (core/audit-verify.ts). */
export const AUDIT_WORDS = { operations: AUDIT_OPERATIONS, outcomes: AUDIT_OUTCOMES, severities: AUDIT_SEVERITIES } as const;

/**
 * The audit log as exported: each entry and checkpoint is sent as its own JSON text, exactly as the
 * node decoded it from its LevelDB, so that whatever is stored (edited, with extra or mistyped fields)
 * reaches the verifier unchanged instead of being coerced by the response serializer.
 */
const auditLogResponseSchema = closedObject({ format: int(), entries: strings(), checkpoints: strings() });
export type AuditLogResponse = Static<typeof auditLogResponseSchema>;
const withErrors = <T extends TSchema>(ok: T) => ({ 200: ok, '4xx': errorSchema, '5xx': errorSchema });

/**
 * A metrics token (node and coordinator config `metricsToken`): the bearer token that reads GET /metrics.
 * 16..256 printable ASCII characters without spaces, what fits an "Authorization: Bearer" header.
 */
export const METRICS_TOKEN_PATTERN = /^[\x21-\x7e]{16,256}$/;

/** GET /health on nodes and the coordinator. */
export const healthResponseSchema = closedObject({ status: str() });
/**
 * Prometheus metrics in the text exposition format (text/plain, not JSON), on nodes (node/metrics.ts)
 * and the coordinator (coordinator/metrics.ts). contentMediaType (a JSON Schema annotation the validator
 * ignores) tells the OpenAPI document (runtime/openapi.ts) that the body is this text, not JSON.
 */
export const metricsResponseSchema = Type.String({ description: 'Prometheus text exposition format 0.0.4', contentMediaType: 'text/plain' });

// ---- sealed nodes: the shamir-unseal KEK provider (issue 15; node/sealed.ts, node/store/kek-unseal.ts)
/**
 * A node's seal state. uninitialized: a shamir-unseal node without unseal.json (POST /v1/unseal/init);
 * sealed: waiting for operator shares (`progress` of `threshold` in); unsealing: the KEK is rebuilt and
 * the full node is starting; unsealed: serving (every node whose KEK comes from elsewhere, `provider`).
 */
const unsealStatusSchema = closedObject({
  node: index,
  /** The node's KEK provider: shamir-unseal, file, env or pkcs11. */
  provider: str(),
  state: stringEnum(['uninitialized', 'sealed', 'unsealing', 'unsealed']),
  sealed: bool(),
  /** K: how many operator shares unseal the node (shamir-unseal, initialised). */
  threshold: opt(int()),
  /** N: how many operator shares the KEK was split into. */
  operators: opt(int()),
  /** Valid shares submitted since the node last sealed (in memory only). */
  progress: int(),
  /** The public id of the KEK the shares rebuild (node/store/kek.ts RawKek.id), never the KEK. */
  keyCheckValue: opt(str()),
  /** Why the last unseal did not start the node, if it did not. */
  lastError: opt(str()),
});
export type UnsealStatusResponse = Static<typeof unsealStatusSchema>;
/**
 * Initialise a shamir-unseal node that has no data dir yet: it makes a random KEK, splits it K-of-N, keeps
 * only the public metadata and returns the shares once. With `operatorKeys` (ML-KEM-768 or X-Wing public
 * keys, operator i's at [i - 1]) each share is sealed to its operator's key; without, the shares come in
 * plain and the caller must keep them secret.
 */
const unsealInitRequestSchema = closedObject({
  threshold,
  operators: Type.Integer({ minimum: 2, maximum: 255, description: 'the number of operator shares, an integer from 2 to 255' }),
  operatorKeys: opt(Type.Array(hex(1184, 1216), { minItems: 2, maxItems: 255, description: 'one ML-KEM-768 or X-Wing public key per operator' })),
});
export type UnsealInitRequest = Static<typeof unsealInitRequestSchema>;
const unsealShareSchema = closedObject({
  /** The share's index, 1..operators; the share of operator i. */
  index,
  /** SHA-256 check value the node keeps for it (node/store/kek-unseal.ts shareCheckValue). */
  checkValue: hex(32, 32),
  /**
   * The share in plain (hex, 33 bytes), when no operator keys were given: the only time it exists outside
   * its operator, as a new API key in createApiKey's answer. The node keeps no share.
   */
  share: opt(hex(33, 33)),
  /** The share sealed to the operator's key (core/wrap.ts sealToReceiver, node/store/kek-unseal.ts unsealShareAad). */
  wrapped: opt(closedObject({ kem: stringEnum(WRAP_KEMS), wrappingKeyFingerprint: hex(32, 32), enc: hex(1, 2048), ciphertext: hex(1, 256) })),
});
const unsealInitResponseSchema = closedObject({
  node: index,
  threshold: int(),
  operators: int(),
  keyCheckValue: str(),
  /** The node's identity public key (ML-DSA-65, made in the new data dir), for the cluster's membership. */
  identityPublicKey: str(),
  shares: Type.Array(unsealShareSchema),
});
export type UnsealInitResponse = Static<typeof unsealInitResponseSchema>;
/**
 * Phase 1 of rotating a shamir-unseal node's KEK (node/store/kek-unseal.ts prepareUnsealRotation): the
 * unsealed node makes the next KEK, splits it K-of-N (default: unseal.json's K and N) and answers the new
 * shares once, as init does (sealed to `operatorKeys`, or plain). Asked again before phase 2 (POST
 * /v1/admin/kek/rotate) it splits the same next KEK into fresh shares. The old shares unseal the node
 * until phase 2 ends; then only the new ones.
 */
const kekRotatePrepareRequestSchema = closedObject({
  threshold: opt(threshold),
  operators: opt(Type.Integer({ minimum: 2, maximum: 255, description: 'the number of operator shares, an integer from 2 to 255' })),
  operatorKeys: opt(Type.Array(hex(1184, 1216), { minItems: 2, maxItems: 255, description: 'one ML-KEM-768 or X-Wing public key per operator' })),
});
export type KekRotatePrepareRequest = Static<typeof kekRotatePrepareRequestSchema>;
const kekRotatePrepareResponseSchema = closedObject({
  node: index,
  threshold: int(),
  operators: int(),
  /** The next KEK's public id: the one the new shares rebuild. */
  keyCheckValue: str(),
  /** The node's KEK now: the one the old shares rebuild, until phase 2 ends. */
  from: str(),
  /** True when this split the next KEK an earlier prepare made (the earlier shares no longer match). */
  resplit: bool(),
  shares: Type.Array(unsealShareSchema),
});
export type KekRotatePrepareResponse = Static<typeof kekRotatePrepareResponseSchema>;
const unsealRequestSchema = closedObject({
  shareIndex: index,
  share: hex(33, 33),
});
export type UnsealRequest = Static<typeof unsealRequestSchema>;
const unsealResponseSchema = closedObject({ ...unsealStatusSchema.properties, accepted: index });
export type UnsealResponse = Static<typeof unsealResponseSchema>;

/** Route table: method, URL and schema of every route the node serves. */
export const ROUTES = {
  health: { method: 'GET', url: '/health', schema: { summary: 'Liveness probe (no API key)', response: withErrors(healthResponseSchema) } },
  ready: {
    method: 'GET',
    url: '/ready',
    schema: { summary: 'Readiness probe: connected to the coordinator (no API key)', response: { 200: closedObject({ ready: opt(bool()) }), 503: errorSchema } },
  },
  // Prometheus metrics (node/metrics.ts), in the text exposition format (text/plain, not JSON): an admin
  // API key or the node's metrics token (node/config.ts metricsToken) reads them.
  metrics: { method: 'GET', url: '/metrics', schema: { summary: 'Prometheus metrics, text (admin API key or the metrics token)', response: withErrors(metricsResponseSchema) } },
  node: { method: 'GET', url: '/v1/node', schema: { summary: "This node's index, identity and import keys, readiness and group backends", response: withErrors(nodeInfoSchema) } },
  keygen: { method: 'POST', url: '/v1/keys', schema: { summary: 'Create a key by DKG (every node of the committee is asked with the same request)', body: keygenRequestSchema, response: withErrors(keyInfoSchema) } },
  /**
   * Every version of every key of the caller's tenant, ordered by keyId then version (issue 11,
   * `tessera keys list`). Optional filter by lifecycle state. Public data only: no share leaves.
   */
  listKeys: {
    method: 'GET',
    url: '/v1/keys',
    schema: { summary: "Every version of every key of the caller's tenant", querystring: closedObject({ state: opt(keyState) }), response: withErrors(listKeysResponseSchema) },
  },
  getKey: {
    method: 'GET',
    url: '/v1/keys/:keyId',
    schema: {
      summary: 'One key version (default the newest)',
      params: keyParams,
      // A query string is text: the version is parsed by node/http/api.ts parseDecimal, strictly, not coerced.
      querystring: closedObject({ version: opt(versionText) }),
      response: withErrors(keyInfoSchema),
    },
  },
  sign: { method: 'POST', url: '/v1/keys/:keyId/sign', schema: { summary: "This node's part of a two-round threshold signing session", params: keyParams, body: signRequestSchema, response: withErrors(signResponseSchema) } },
  /** Reserve `count` presignature commitments of this node (each is handed out once), in a signed batch. */
  presignatures: {
    method: 'POST',
    url: '/v1/keys/:keyId/presignatures',
    schema: { summary: 'Reserve presignature commitments of this node, in a signed batch', params: keyParams, body: presignaturesRequestSchema, response: withErrors(presignaturesResponseSchema) },
  },
  /** One-round signing: this node's signature share over a message with a presigned commitment list. */
  signShare: {
    method: 'POST',
    url: '/v1/keys/:keyId/sign-share',
    schema: { summary: "This node's signature share over a message with a presigned commitment list", params: keyParams, body: signShareRequestSchema, response: withErrors(signShareResponseSchema) },
  },
  /** Signature shares over up to MAX_SIGN_BATCH messages with one key; one audit entry per message. */
  signBatch: { method: 'POST', url: '/v1/sign-batch', schema: { summary: 'Signature shares over up to 256 messages with one key', body: signBatchRequestSchema, response: withErrors(signBatchResponseSchema) } },
  /** Threshold ECDSA: make `count` presignatures in a session among `players` (every player's SDK asks its node). */
  ecdsaPresignatures: {
    method: 'POST',
    url: '/v1/keys/:keyId/ecdsa-presignatures',
    schema: { summary: 'Threshold ECDSA: make presignatures in a session among the signers', params: keyParams, body: ecdsaPresignaturesRequestSchema, response: withErrors(ecdsaPresignaturesResponseSchema) },
  },
  /** Threshold ECDSA one-round signing: this node's (u_i, w_i) for a message with one presignature, used once. */
  ecdsaSignShare: {
    method: 'POST',
    url: '/v1/keys/:keyId/ecdsa-sign-share',
    schema: { summary: "Threshold ECDSA: this node's one-round share with one presignature", params: keyParams, body: ecdsaSignShareRequestSchema, response: withErrors(ecdsaSignShareResponseSchema) },
  },
  decapsulate: {
    method: 'POST',
    url: '/v1/keys/:keyId/decapsulate',
    schema: { summary: "This node's partial HPKE decapsulation, wrapped to the receiver", params: keyParams, body: decapsulateRequestSchema, response: withErrors(decapsulateResponseSchema) },
  },
  refresh: { method: 'POST', url: '/v1/keys/:keyId/refresh', schema: { summary: 'Refresh the shares of a key version (same public key, next epoch)', params: keyParams, body: refreshRequestSchema, response: withErrors(refreshResponseSchema) } },
  /**
   * Reshare a key version to a new committee and threshold (issue 13): a session of the dealers and the
   * new committee; every player's SDK asks its own node. Committed with every player's vote.
   */
  reshare: { method: 'POST', url: '/v1/keys/:keyId/reshare', schema: { summary: 'Reshare a key version to a new committee and threshold', params: keyParams, body: reshareRequestSchema, response: withErrors(reshareResponseSchema) } },
  /** After a reshare, an old holder that was not a player: verify the certificate, commit the new package (erase the old share). */
  reshareHandoff: {
    method: 'POST',
    url: '/v1/keys/:keyId/reshare/handoff',
    schema: { summary: 'After a reshare: hand an old holder the certificate; it erases its share', params: keyParams, body: reshareHandoffRequestSchema, response: withErrors(reshareHandoffResponseSchema) },
  },
  /** The node's committed cluster membership. Admin API keys only. */
  getMembership: { method: 'GET', url: '/v1/admin/membership', schema: { summary: "The cluster's committed membership (admin)", response: withErrors(membershipSchema) } },
  /** Every membership change this node committed, with certificates. Admin API keys only. */
  membershipHistory: { method: 'GET', url: '/v1/admin/membership/history', schema: { summary: 'Every membership change this node committed, with certificates (admin)', response: withErrors(membershipHistoryResponseSchema) } },
  /** Change the membership: a certified session of the members the change keeps. Admin API keys only. */
  changeMembership: {
    method: 'POST',
    url: '/v1/admin/membership',
    schema: { summary: "Change the cluster's membership (admin)", body: changeMembershipRequestSchema, response: withErrors(changeMembershipResponseSchema) },
  },
  /** Finish a membership change this node missed, from its certificate. Admin API keys only. */
  applyMembership: {
    method: 'POST',
    url: '/v1/admin/membership/certificate',
    schema: { summary: 'Finish a membership change this node missed, from its certificate (admin)', body: applyMembershipRequestSchema, response: withErrors(applyMembershipResponseSchema) },
  },
  /** Every tenant of this node. Admin API keys only. */
  listTenants: { method: 'GET', url: '/v1/admin/tenants', schema: { summary: 'Every tenant of this node (admin)', response: withErrors(tenantListResponseSchema) } },
  /** Export: re-randomise (not committed), wrap this node's new share to its wrapping key. Needs all n nodes. */
  exportKey: {
    method: 'POST',
    url: '/v1/keys/:keyId/export',
    schema: { summary: "Export: this node's re-randomised share wrapped to a wrapping key", params: keyParams, body: exportRequestSchema, response: withErrors(exportResponseSchema) },
  },
  /** Import: unwrap this node's share of a bundle, check it, re-randomise with the others, store. Needs all n nodes. */
  importKey: { method: 'POST', url: '/v1/import', schema: { summary: "Import: this node's share of a key bundle", body: importRequestSchema, response: withErrors(keyInfoSchema) } },
  /** Verify a signature under a key version (a local check, no session; allowed while active or retired). */
  verify: { method: 'POST', url: '/v1/keys/:keyId/verify', schema: { summary: 'Verify a signature under a key version', params: keyParams, body: verifyRequestSchema, response: withErrors(verifyResponseSchema) } },
  /** Rotate: a new version by DKG under the same key id; the old one is retired. Needs all n nodes. */
  rotate: { method: 'POST', url: '/v1/keys/:keyId/rotate', schema: { summary: 'Rotate: a new version by DKG under the same key id', params: keyParams, body: rotateRequestSchema, response: withErrors(rotateResponseSchema) } },
  /** Lifecycle transition of one version (retire, archive, activate, destroy). Needs all n nodes. */
  setState: { method: 'POST', url: '/v1/keys/:keyId/state', schema: { summary: 'Retire, archive, activate or destroy one key version', params: keyParams, body: setStateRequestSchema, response: withErrors(keyInfoSchema) } },
  createTenant: { method: 'POST', url: '/v1/admin/tenants', schema: { summary: 'Create a tenant (admin)', body: createTenantRequestSchema, response: withErrors(tenantSchema) } },
  createApiKey: { method: 'POST', url: '/v1/admin/api-keys', schema: { summary: 'Create an API key; the key is in this answer only (admin)', body: createApiKeyRequestSchema, response: withErrors(createApiKeyResponseSchema) } },
  listApiKeys: {
    method: 'GET',
    url: '/v1/admin/api-keys',
    schema: { summary: 'API keys (ids, tenants, roles, times; never keys) (admin)', querystring: closedObject({ tenant: opt(id) }), response: withErrors(listApiKeysResponseSchema) },
  },
  revokeApiKey: { method: 'POST', url: '/v1/admin/api-keys/:id/revoke', schema: { summary: 'Revoke an API key (admin)', params: apiKeyParams, response: withErrors(apiKeyInfoSchema) } },
  getPolicy: { method: 'GET', url: '/v1/admin/policy', schema: { summary: "This node's policy rules and fail-open state (admin)", response: withErrors(policySchema) } },
  setPolicy: { method: 'POST', url: '/v1/admin/policy', schema: { summary: "Replace this node's policy rules (admin)", body: setPolicyRequestSchema, response: withErrors(policySchema) } },
  enableFailOpen: { method: 'POST', url: '/v1/admin/policy/fail-open', schema: { summary: 'Let requests through while the stored rules cannot be read (admin)', body: enableFailOpenRequestSchema, response: withErrors(failOpenSchema) } },
  disableFailOpen: { method: 'POST', url: '/v1/admin/policy/fail-open/disable', schema: { summary: 'End fail-open (admin)', body: emptyRequestSchema, response: withErrors(failOpenSchema) } },
  /** Re-wrap every record under a new KEK, then destroy the old one (node/store/kek-rotation.ts); finishes an interrupted rotation first. */
  rotateKek: { method: 'POST', url: '/v1/admin/kek/rotate', schema: { summary: "Rotate this node's KEK (admin)", body: emptyRequestSchema, response: withErrors(kekRotateResponseSchema) } },
  /** A shamir-unseal node's KEK rotation, phase 1: the next KEK split into new operator shares, returned once (admin). */
  kekRotatePrepare: {
    method: 'POST',
    url: '/v1/admin/kek/rotate/prepare',
    schema: { summary: "Prepare a shamir-unseal node's KEK rotation: new operator shares, returned once (admin)", body: kekRotatePrepareRequestSchema, response: withErrors(kekRotatePrepareResponseSchema) },
  },
  /** The whole audit log with its signed checkpoints (the head is checkpointed first), for offline verification. */
  auditLog: { method: 'GET', url: '/v1/admin/audit', schema: { summary: 'The audit log with its signed checkpoints (admin)', response: withErrors(auditLogResponseSchema) } },
  /**
   * The operator's policy refused a session on one of its keys: tell the coordinator, so the other
   * nodes fail fast. An operation on that key (gate: the tenant's key, policy 'decline', audited).
   */
  decline: { method: 'POST', url: '/v1/sessions/decline', schema: { summary: 'Tell the coordinator this node refuses a session', body: declineRequestSchema, response: withErrors(declineResponseSchema) } },
  /** What this node holds of a key's commits: its staged change, versions and certificates. */
  commitStatus: { method: 'GET', url: '/v1/keys/:keyId/commits', schema: { summary: "What this node holds of a key's commits (for repair)", params: keyParams, response: withErrors(commitStatusResponseSchema) } },
  /** Repair step 1: this node's signed attestation that it staged the change of a session. */
  attestStaged: {
    method: 'POST',
    url: '/v1/keys/:keyId/staged/attest',
    schema: { summary: "Repair step 1: this node's attestation of a staged change", params: keyParams, body: stagedSessionRequestSchema, response: withErrors(stagedAttestResponseSchema) },
  },
  /** Repair step 2: release this node's stored vote, given every node's attestation that it staged the same result. */
  releaseVote: {
    method: 'POST',
    url: '/v1/keys/:keyId/staged/release',
    schema: { summary: "Repair step 2: release this node's stored vote", params: keyParams, body: releaseVoteRequestSchema, response: withErrors(stagedReleaseResponseSchema) },
  },
  /** Drop a staged change whose vote this node never released (some node never staged it). */
  dropStaged: {
    method: 'POST',
    url: '/v1/keys/:keyId/staged/drop',
    schema: { summary: 'Drop a staged change whose vote was never released', params: keyParams, body: stagedSessionRequestSchema, response: withErrors(stagedDropResponseSchema) },
  },
  /** Finish a commit this node missed from its certificate (verified against the membership). */
  repair: { method: 'POST', url: '/v1/keys/:keyId/repair', schema: { summary: 'Finish a commit this node missed, from its certificate', params: keyParams, body: repairRequestSchema, response: withErrors(repairResponseSchema) } },
  // Sealed nodes (shamir-unseal KEK provider): answered while sealed, with health, as well as after.
  /** Whether the node is sealed, and how many operator shares are in. Any API key of the node's config while sealed. */
  unsealStatus: { method: 'GET', url: '/v1/unseal', schema: { summary: 'Seal state: sealed or not, shares submitted of the threshold', response: withErrors(unsealStatusSchema) } },
  /** Make the KEK of a new shamir-unseal node and split it into operator shares, returned once (admin). */
  unsealInit: {
    method: 'POST',
    url: '/v1/unseal/init',
    schema: { summary: 'Initialise a shamir-unseal node: the KEK split into operator shares, returned once (admin)', body: unsealInitRequestSchema, response: withErrors(unsealInitResponseSchema) },
  },
  /** Submit one operator share to a sealed node; the K-th valid share unseals it (admin). */
  unseal: { method: 'POST', url: '/v1/unseal', schema: { summary: 'Submit one operator share to a sealed node (admin)', body: unsealRequestSchema, response: withErrors(unsealResponseSchema) } },
  /** Seal a running shamir-unseal node: the full node stops and the KEK is wiped (admin). */
  seal: { method: 'POST', url: '/v1/seal', schema: { summary: 'Seal a running shamir-unseal node again (admin)', body: emptyRequestSchema, response: withErrors(unsealStatusSchema) } },
} as const;
