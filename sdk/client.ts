/**
 * The Tessera SDK.
 *
 * `NodeClient` talks to one node with that node's API key. Before it asks its node to join a session,
 * it runs the operator's policy hook on the exact session request; if the hook refuses, the node is
 * never asked. `Cluster` holds every operator's NodeClient (development, tests, single-organisation
 * deployments) and runs them in parallel under one session id.
 */
import { forEachGroup, groupedBy } from './grouping.js';
import { rotateEveryKey, type RotateAllResult, type RotateAllTenantOps } from './rotate-all.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { fromHex, toHex } from '../core/bytes.js';
import { decapCombine } from '../core/decap.js';
import { TRANSITION_TARGETS } from '../core/lifecycle.js';
import { getKemSuite, getSigningSuite, getSuite, isSuiteId } from '../core/suites.js';
import type { PublicKeyPackage } from '../core/types.js';
import { decodeMessage } from '../core/wire.js';
import { decapPartialBinding, declaredRounds, type Operation } from '../core/session.js';
import { decodeCertificate, encodeCertificate, publicPackageDigest, sameStatement, verifyCertificate, type CommitCertificate } from '../core/commit.js';
import { checkCommittee, isContiguous, isParty, partyIndices } from '../core/committee.js';
import { decodeEvidence, verifyEquivocationEvidence } from '../core/evidence.js';
import { generateOneCallReceiver, openAllFromSenderOneCall, wipeOneCallReceiver } from '../core/wrap.js';
import { verifyAuditLog, type AuditExport, type AuditVerification } from '../core/audit-verify.js';
import {
  assembleBundle,
  assembleResharedBundle,
  bundleDigest,
  bundleToJson,
  parseBundle,
  wrappingKeyFingerprint,
  wrappingKeysForParties,
  type AnyBundleJson,
  type KeyBundleJson,
} from '../core/bundle.js';
import type { ImportKeysFileJson } from './keyfiles.js';
import type {
  ApiKeyInfoJson,
  AuditLogResponse,
  ListKeysResponse,
  CreateApiKeyResponse,
  DecapsulateResponse,
  DeclineResponse,
  CommitStatusResponse,
  RepairResponse,
  StagedAttestResponse,
  StagedDropResponse,
  StagedReleaseResponse,
  ExportResponse,
  FailOpenJson,
  KekRotateResponse,
  KeyInfo,
  NodeInfo,
  PolicyResponse,
  PublicKeyPackageJson,
  RefreshResponse,
  ReshareHandoffResponse,
  ReshareResponse,
  RotateResponse,
  SignResponse,
  TenantResponse,
  VerifyResponse,
  PresignaturesResponse,
  PresignedCommitmentJson,
  SignShareRequest,
  SignShareResponse,
  SignBatchRequest,
  SignBatchResponse,
  ApplyMembershipResponse,
  ChangeMembershipRequest,
  ChangeMembershipResponse,
  MemberJson,
  MembershipHistoryResponse,
  MembershipResponse,
  TenantListResponse,
} from '../contract/http.js';
import { ACT_AS_TENANT_HEADER, MAX_SIGN_BATCH } from '../contract/http.js';
import { MEMBERSHIP_KEY_ID, membershipDigest, verifyMembershipChange, type Membership, type MembershipChange } from '../core/membership.js';
import {
  asClientError,
  checkedStep,
  compareMemberships,
  identityKeyOf,
  membersToJson,
  membershipOf,
  membershipOfResponse,
  nextMembers,
  planKeyReshare,
  type KeyMoveChange,
  type MemberSpec,
  type MembershipAnswer,
  type MembershipReport,
} from './membership.js';
import { ensureGroupBackends } from '../runtime/group-backend.js';
import { buildKeysReport, type KeysReport, type NodeProtection } from './inventory.js';
import { checkTimeoutMs, DEFAULT_TIMEOUT_MS, isUnreachable, nodeLabel, requestJson, TesseraClientError, type HttpTarget } from './http.js';
import { bytesOrHex, normalizeHex } from './formats.js';
import { hpkeParams, kemSuiteOf, sealToPublicKey, encapsulateToPublicKey } from './seal.js';
import { createContext } from '../core/hpke.js';
import { zeroize } from '../core/bytes.js';
import { isTesseraError } from '../core/errors.js';
import { derivableSuite, derivationInfo, deriveChild, derivePublicPackage, formatDerivationPath, packageGroupKey, parseDerivationPath } from '../core/derive.js';
import { combinePreparedShares, prepareSignatureShares, Presigner, verifyPresignedBatch, type PresignOptions, type PresignStats, type VerifiedPresignBatch } from './presign.js';
import { checkEcdsaPresignAnswers, combineEcdsaPresigned, EcdsaPresignCache } from './ecdsa-presign.js';
import {
  MAX_ECDSA_PRESIGN_BATCH,
  type EcdsaPresignatureJson,
  type EcdsaPresignaturesRequest,
  type EcdsaPresignaturesResponse,
  type EcdsaSignShareRequest,
  type EcdsaSignShareResponse,
} from '../contract/http.js';

export { TesseraClientError };
// Moving keys to and from external key stores, and wrapping keys (core/bundle.ts, core/wrap.ts).
export {
  bundleDigest,
  parseBundle,
  splitAndWrap,
  unwrapAndCombine,
  wrappingKeyFingerprint,
  type AnyBundleJson,
  type KeyBundle,
  type KeyBundleJson,
  type ResharedBundleJson,
} from '../core/bundle.js';
export { generateWrappingKeyPair, type WrapKem, type WrappingKeyPair } from '../core/wrap.js';
// Offline verification of a node's audit log (core/audit-verify.ts).
export { verifyAuditLog, type AuditExport, type AuditVerification } from '../core/audit-verify.js';
export type { KeyInfo, ReshareHandoffResponse, ReshareResponse, RotateResponse, SignResponse, VerifyResponse } from '../contract/http.js';
export type { RotateAllResult, RotateAllSkipped } from './rotate-all.js';
// One-round signing from presignatures (sdk/presign.ts): operators with separate SDKs combine their nodes' shares.
export { combineSignatureShares, type PresignOptions, type PresignStats, type SignatureShareJson, type VerifiedPresignBatch } from './presign.js';
// Threshold ECDSA one-round signing from DKLs23 presignatures (sdk/ecdsa-presign.ts).
export { checkEcdsaPresignAnswers, combineEcdsaPresigned } from './ecdsa-presign.js';
export type { EcdsaPresignatureJson, EcdsaPresignaturesRequest, EcdsaPresignaturesResponse, EcdsaSignShareRequest, EcdsaSignShareResponse } from '../contract/http.js';
export type { PresignedCommitmentJson, SignBatchRequest, SignBatchResponse, SignShareRequest, SignShareResponse } from '../contract/http.js';
// The quantum-readiness inventory (sdk/inventory.ts, `tessera keys report`).
export { buildKeysReport, formatKeysReport, type KeyReportRow, type KeysReport } from './inventory.js';

/** Lifecycle states of a key version (core/lifecycle.ts). */
export type KeyState = 'active' | 'retired' | 'archived' | 'destroyed';
/** The session operation that moves a version to each state. */
export const TRANSITION_OPERATIONS = { retired: 'retire', archived: 'archive', active: 'activate', destroyed: 'destroy' } as const;
export type TransitionOperation = (typeof TRANSITION_OPERATIONS)[KeyState];

/** What an operator's policy hook sees: the whole session request, bytes in hex. */
export type SessionRequest =
  | { operation: 'keygen'; sessionId: string; keyId: string; suite: string; threshold: number; exportable: boolean; rotationPeriodMs?: number }
  /** A new version by DKG under the same key id; `version` (default the newest active) is retired. */
  | { operation: 'rotate'; sessionId: string; keyId: string; version?: number }
  /** A lifecycle transition of one version: retire, archive, activate or destroy (erases the shares). */
  | { operation: TransitionOperation; sessionId: string; keyId: string; version: number; state: KeyState }
  /**
   * `commitments` is set when the players sign from presignatures in one round: the commitment list
   * every player is sent (one per player). Such a sign runs no node session: `sessionId` then names
   * the call only (the two-round session it falls back to, if any, uses it).
   */
  | {
      operation: 'sign';
      sessionId: string;
      keyId: string;
      version?: number;
      message: string;
      players: number[];
      commitments?: PresignedCommitmentJson[];
      /** Sign with this child key (core/derive.ts), a non-hardened BIP-32 path such as m/0/5. */
      path?: string;
      /** Threshold ECDSA keys: `message` is the digest to sign (contract/http.ts SignRequest.prehashed). */
      prehashed?: boolean;
    }
  | { operation: 'decapsulate'; sessionId: string; keyId: string; version?: number; enc: string; players: number[]; receiverPublicKey: string }
  | { operation: 'refresh'; sessionId: string; keyId: string; version?: number }
  /**
   * Reshare a version to committee `nodes` with threshold `threshold` (issue 13; the public key stays):
   * `dealers` (old holders) deal; every node of `dealers` and `nodes` is asked (a new node holds no
   * record yet: `suite` and `version` name the key for it). `oldPackageDigest` names the key state
   * being reshared (core/commit.ts publicPackageDigest of its public package).
   */
  | { operation: 'reshare'; sessionId: string; keyId: string; suite: string; version: number; threshold: number; nodes: number[]; dealers: number[]; oldPackageDigest: string }
  /**
   * Change the cluster's membership (issue 13; core/membership.ts) to `members` at `epoch`: asked of every
   * member the change keeps (its voters). `keyId` is the commit statement's (MEMBERSHIP_KEY_ID); `added`,
   * `removed` and `replaced` (a node back with a new identity) say what changes, for the hook to judge.
   */
  | {
      operation: 'membership';
      sessionId: string;
      keyId: typeof MEMBERSHIP_KEY_ID;
      epoch: number;
      members: MemberJson[];
      added: number[];
      removed: number[];
      replaced: number[];
    }
  | {
      operation: 'export';
      sessionId: string;
      keyId: string;
      version?: number;
      /** The wrapping public keys (hex): one for all shares, or node i's at [i - 1]. */
      wrappingKeys: string[];
      /** SHA-256 of each wrapping key, hex: what node allowlists list. */
      wrappingKeyFingerprints: string[];
      /** A destination of another size: the nodes deal its t'-of-n' sharing (a version 2 bundle); `wrappingKeys` are its nodes' keys. */
      reshare?: { threshold: number; parties: number };
    }
  | {
      operation: 'import';
      sessionId: string;
      /** The key id the key will have here. */
      keyId: string;
      /** Version 1 (same size) or version 2 (dealt for this cluster's size). */
      bundle: AnyBundleJson;
      /** SHA-256 over the canonical bundle (core/bundle.ts bundleDigest), hex: what the session binds. */
      bundleDigest: string;
      exportable: boolean;
      threshold: number;
    };

export type ApproveHook = (request: SessionRequest) => boolean | Promise<boolean>;

export interface NodeClientOptions {
  /** Base URL of the node's API, e.g. https://node1.example:7701. */
  url: string;
  apiKey: string;
  /** The operator's policy: runs before the node is asked to join any session. Default: approve. */
  approve?: ApproveHook;
  /** Pinned PEM certificate of the node (https). */
  ca?: string | Buffer;
  /** Deadline of each request to this node, in ms (default 15000): past it the call fails with NODE_TIMEOUT naming the node. */
  timeoutMs?: number;
  /** The node's index, when known (used in error messages). */
  index?: number;
  /**
   * The node's ML-DSA-65 identity public key (hex or bytes) from a source you trust, e.g. the cluster
   * file: what its presignature batches are verified against. Without it, the key the node reports the
   * first time it is asked (GET /v1/node) is used from then on.
   */
  identityPublicKey?: string | Uint8Array;
  /** Called once for every HTTP request to this node (metrics, tests counting round trips). */
  onRequest?: HttpTarget['onRequest'];
  /**
   * Act for this tenant with an admin API key (header ACT_AS_TENANT_HEADER on every request): how a
   * membership change reshares every tenant's keys with the cluster file's admin keys. See forTenant.
   */
  tenant?: string;
}

/** What a NodeClient last learnt about its node's liveness (Date.now() times): any answer, any non-answer. */
export interface NodeLiveness {
  answeredAt?: number;
  failedAt?: number;
  /** Why the last request got no answer (refused, reset, timeout). */
  failure?: string;
}

export class NodeClient {
  private readonly target: HttpTarget;
  private readonly approve: ApproveHook;
  /** Updated by every request to this node; Cluster's live-player selection reads it. */
  readonly liveness: NodeLiveness = {};
  constructor(readonly options: NodeClientOptions) {
    ensureGroupBackends(); // once per process: native group arithmetic for aggregation and checks
    if (options.timeoutMs !== undefined) checkTimeoutMs(options.timeoutMs, 'NodeClientOptions.timeoutMs');
    this.target = {
      url: options.url,
      apiKey: options.apiKey,
      ca: options.ca,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      node: options.index,
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
      ...(options.tenant !== undefined ? { headers: { [ACT_AS_TENANT_HEADER]: tenantName(options.tenant) } } : {}),
      onOutcome: ({ answered, reason }) => {
        if (answered) this.liveness.answeredAt = Date.now();
        else {
          this.liveness.failedAt = Date.now();
          this.liveness.failure = reason ?? 'no answer';
        }
      },
    };
    this.approve = options.approve ?? (() => true);
  }

  /** "node 2 (https://host:7702)" */
  get label(): string {
    return nodeLabel(this.target);
  }

  /**
   * GET /ready with its own deadline: 'ready', 'not-ready' (the node answered but is not connected to
   * its coordinator or cannot serve: sessions fail, one-round calls may work), or 'no-answer'.
   */
  async probe(timeoutMs: number): Promise<'ready' | 'not-ready' | 'no-answer'> {
    try {
      await requestJson({ ...this.target, timeoutMs: Math.min(timeoutMs, this.target.timeoutMs ?? DEFAULT_TIMEOUT_MS) }, 'GET', '/ready');
      return 'ready';
    } catch (e) {
      return isUnreachable(e) ? 'no-answer' : 'not-ready';
    }
  }

  /** Every version of every key of this API key's tenant (ordered by key id, then version), optionally only those in `state`. */
  async listKeys(o: { state?: KeyState } = {}): Promise<KeyInfo[]> {
    if (o.state !== undefined && !(o.state in TRANSITION_OPERATIONS)) throw new TesseraClientError('BAD_INPUT', `state: expected one of ${Object.keys(TRANSITION_OPERATIONS).join(', ')}`);
    const r = await requestJson<ListKeysResponse>(this.target, 'GET', `/v1/keys${o.state ? `?state=${encodeURIComponent(o.state)}` : ''}`);
    return r.keys;
  }

  info(): Promise<NodeInfo> {
    return requestJson(this.target, 'GET', '/v1/node');
  }

  private identity?: Promise<Uint8Array>;
  /** The identity key this SDK trusts for the node: the configured one, else the one it first reported. */
  identityKey(): Promise<Uint8Array> {
    if (!this.identity) {
      const given = this.options.identityPublicKey;
      this.identity =
        given !== undefined
          ? Promise.resolve(typeof given === 'string' ? bytesOrHex(given, 'identityPublicKey') : given)
          : this.info().then((info) => {
              if (this.options.index !== undefined && info.index !== this.options.index) {
                throw new TesseraClientError('BAD_RESPONSE', `node ${this.options.index} reports index ${info.index}`, { node: this.options.index });
              }
              return fromHex(info.identityPublicKey, 'identityPublicKey');
            });
      this.identity.catch(() => (this.identity = undefined));
    }
    return this.identity;
  }

  /**
   * Reserve `count` (1..MAX_PRESIGN_BATCH) presignature commitments of this node for a key version
   * (default the newest active one). The node hands each out once; the batch is returned only after
   * its ML-DSA-65 signature verified under the node's identity key (identityKey) and every commitment
   * decoded as a group element of the key's suite (`suite`, when given, must match).
   */
  async presignatures(keyId: string, count: number, o: { version?: number; suite?: string } = {}): Promise<VerifiedPresignBatch> {
    const identityPublicKey = await this.identityKey();
    const r = await requestJson<PresignaturesResponse>(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/presignatures`, {
      count,
      ...(o.version !== undefined ? { version: o.version } : {}),
    });
    return verifyPresignedBatch(r, {
      keyId,
      count,
      identityPublicKey,
      ...(this.options.index !== undefined ? { node: this.options.index } : {}),
      ...(o.version !== undefined ? { version: o.version } : {}),
      ...(o.suite !== undefined ? { suite: o.suite } : {}),
    });
  }

  /**
   * This node's signature share over `message` with a presigned commitment list (one entry per signer,
   * this node's own included): one round trip. The operator's policy hook sees the message and the
   * list first (unless `approved`: the caller ran it). Combine the shares of every signer with
   * combineSignatureShares. Every signer must be sent the same message and list, or nothing combines.
   */
  async signShare(keyId: string, req: SignShareRequest, o: { approved?: boolean } = {}): Promise<SignShareResponse> {
    if (!o.approved) await this.authorize(presignedRequest(keyId, req.version, req.message, req.commitments, req.path));
    const r = await requestJson<SignShareResponse>(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/sign-share`, {
      message: req.message,
      commitments: req.commitments,
      version: req.version,
      epoch: req.epoch,
      ...(req.path !== undefined ? { path: req.path } : {}),
    });
    this.checkShareAnswer(r, keyId, req.version, req.epoch);
    if (typeof r.share !== 'string' || typeof r.commitment !== 'string') {
      throw new TesseraClientError('BAD_RESPONSE', `node ${r.node} answered without a share and its group commitment`, { node: r.node });
    }
    return r;
  }

  /**
   * Threshold ECDSA: ask this node to take part in a presigning session (node/presign/ecdsa-pools.ts)
   * among `req.players`; every player's node must be asked with the same request. No operator hook runs
   * here (as for FROST presignatures): a presignature signs nothing, and every signature made with one
   * is approved by every operator's hook (ecdsaSignShare).
   */
  async ecdsaPresignatures(keyId: string, req: EcdsaPresignaturesRequest): Promise<EcdsaPresignaturesResponse> {
    const r = await requestJson<EcdsaPresignaturesResponse>(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/ecdsa-presignatures`, req);
    if (this.options.index !== undefined && r.node !== this.options.index) {
      throw new TesseraClientError('BAD_RESPONSE', `node ${this.options.index} answered as node ${r.node}`, { node: this.options.index });
    }
    return r;
  }

  /**
   * Threshold ECDSA: this node's (u_i, w_i) over `req.message` with one presignature (used once; a
   * second request for it is refused with PRESIGNATURE_UNAVAILABLE). The operator's hook sees the
   * message and the players first (unless `approved`). Combine every signer's answer with
   * combineEcdsaPresigned (sdk/ecdsa-presign.ts).
   */
  async ecdsaSignShare(keyId: string, req: EcdsaSignShareRequest, o: { approved?: boolean } = {}): Promise<EcdsaSignShareResponse> {
    if (!o.approved) {
      await this.authorize({
        operation: 'sign',
        sessionId: newSessionId(),
        keyId,
        version: req.version,
        message: req.message,
        players: [...req.players],
        ...(req.prehashed !== undefined ? { prehashed: req.prehashed } : {}),
      });
    }
    const r = await requestJson<EcdsaSignShareResponse>(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/ecdsa-sign-share`, req);
    this.checkShareAnswer(r, keyId, req.version, req.epoch);
    if (r.presignatureId !== req.presignatureId || typeof r.u !== 'string' || typeof r.w !== 'string') {
      throw new TesseraClientError('BAD_RESPONSE', `node ${r.node} answered without (u, w) for presignature ${req.presignatureId}`, { node: r.node });
    }
    return r;
  }

  /**
   * This node's signature shares over up to MAX_SIGN_BATCH messages with one key, each with its own
   * presigned commitment list: one round trip (the node audits each message). The hook sees every
   * message with its list first (unless `approved`). shares[i] is over items[i].
   */
  async signBatch(req: SignBatchRequest, o: { approved?: boolean } = {}): Promise<SignBatchResponse> {
    if (!o.approved) await Promise.all(req.items.map((it) => this.authorize(presignedRequest(req.keyId, req.version, it.message, it.commitments))));
    const r = await requestJson<SignBatchResponse>(this.target, 'POST', '/v1/sign-batch', {
      keyId: req.keyId,
      version: req.version,
      epoch: req.epoch,
      items: req.items.map((it) => ({ message: it.message, commitments: it.commitments })),
    });
    this.checkShareAnswer(r, req.keyId, req.version, req.epoch);
    if (!Array.isArray(r.shares) || r.shares.length !== req.items.length || r.shares.some((s) => typeof s !== 'string')) {
      throw new TesseraClientError('BAD_RESPONSE', `node ${r.node} answered ${Array.isArray(r.shares) ? r.shares.length : 'no'} shares for ${req.items.length} messages`, { node: r.node });
    }
    if (!Array.isArray(r.commitments) || r.commitments.length !== req.items.length || r.commitments.some((s) => typeof s !== 'string')) {
      throw new TesseraClientError('BAD_RESPONSE', `node ${r.node} answered ${Array.isArray(r.commitments) ? r.commitments.length : 'no'} group commitments for ${req.items.length} messages`, { node: r.node });
    }
    return r;
  }

  private checkShareAnswer(r: { keyId: string; version: number; epoch: number; node: number }, keyId: string, version: number, epoch: number): void {
    const node = this.options.index;
    if (r.keyId !== keyId || r.version !== version || r.epoch !== epoch || (node !== undefined && r.node !== node)) {
      throw new TesseraClientError('BAD_RESPONSE', `node ${node ?? r.node} answered for key ${r.keyId} version ${r.version} epoch ${r.epoch} node ${r.node}`, {
        ...(node !== undefined ? { node } : {}),
      });
    }
  }

  getKey(keyId: string, version?: number): Promise<KeyInfo> {
    return requestJson(this.target, 'GET', `/v1/keys/${encodeURIComponent(keyId)}${version ? `?version=${version}` : ''}`);
  }

  /** Run the policy hook; throws POLICY_DENIED if it refuses (or throws). */
  async authorize(request: SessionRequest): Promise<void> {
    let ok = false;
    try {
      ok = (await this.approve(request)) === true;
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new TesseraClientError('POLICY_DENIED', `policy hook of node ${this.options.index ?? this.options.url} refused the ${request.operation} request`, {
        node: this.options.index,
      });
    }
  }

  /**
   * Tell the node its operator refused this session, so the coordinator aborts it for the other
   * nodes at once (they get DECLINED naming this node instead of waiting for the deadline). The
   * decline names the key and operation: the node declines only on a key of this API key's tenant
   * (NOT_FOUND otherwise), if its policy allows 'decline', and audits it.
   */
  async decline(request: Pick<SessionRequest, 'sessionId' | 'keyId' | 'operation'> & { version?: number }): Promise<DeclineResponse> {
    return requestJson(this.target, 'POST', '/v1/sessions/decline', {
      sessionId: request.sessionId,
      keyId: request.keyId,
      operation: request.operation,
      ...(request.version !== undefined ? { version: request.version } : {}),
    });
  }

  /** What this node holds of a key's commits: its staged change, versions and certificates (for repair). */
  commitStatus(keyId: string): Promise<CommitStatusResponse> {
    return requestJson(this.target, 'GET', `/v1/keys/${encodeURIComponent(keyId)}/commits`);
  }

  /** Repair: this node's signed attestation that it staged the change of `sessionId`. */
  attestStaged(keyId: string, sessionId: string): Promise<StagedAttestResponse> {
    return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/staged/attest`, { sessionId });
  }

  /** Repair: release this node's stored vote, given every node's attestation that it staged the same result. */
  releaseVote(keyId: string, sessionId: string, attestations: { node: number; attestation: string }[]): Promise<StagedReleaseResponse> {
    return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/staged/release`, { sessionId, attestations });
  }

  /** Repair: drop a staged change whose vote this node never released. */
  dropStaged(keyId: string, sessionId: string): Promise<StagedDropResponse> {
    return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/staged/drop`, { sessionId });
  }

  /** Hand this node a commit certificate (hex) so it finishes a commit it missed. The node verifies it. */
  repair(keyId: string, certificate: string): Promise<RepairResponse> {
    return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/repair`, { certificate });
  }

  /**
   * After a reshare this node was not part of: hand it the reshare's certificate (hex) and the new
   * public package. The node verifies both; an old holder then erases its share. No hook runs: the
   * change was approved by every player's operator and is certified.
   */
  reshareHandoff(keyId: string, o: { certificate: string; publicPackage: PublicKeyPackageJson }): Promise<ReshareHandoffResponse> {
    return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/reshare/handoff`, { certificate: o.certificate, publicPackage: o.publicPackage });
  }

  /** Verify a signature under a key version at this node (allowed while the version is active or retired). */
  verify(keyId: string, o: { message: string; signature: string; version?: number; prehashed?: boolean }): Promise<VerifyResponse> {
    return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/verify`, {
      message: normalizeHex(o.message, 'message'),
      signature: normalizeHex(o.signature, 'signature'),
      ...(o.version ? { version: o.version } : {}),
      ...(o.prehashed !== undefined ? { prehashed: o.prehashed } : {}),
    });
  }

  /**
   * This node with the same admin API key acting for `tenant` (every request names it in the
   * ACT_AS_TENANT_HEADER header): its keys, reshares and commits are that tenant's. The node refuses it
   * for a tenant API key. Hooks, deadlines and the pinned certificate are kept.
   */
  forTenant(tenant: string): NodeClient {
    return new NodeClient({ ...this.options, tenant: tenantName(tenant) });
  }

  // ---- administration (an admin API key of this node)

  /** Every tenant of this node. */
  async listTenants(): Promise<TenantListResponse['tenants']> {
    return (await requestJson<TenantListResponse>(this.target, 'GET', '/v1/admin/tenants')).tenants;
  }

  /** This node's committed cluster membership (core/membership.ts): epoch, members, digest. */
  getMembership(): Promise<MembershipResponse> {
    return requestJson(this.target, 'GET', '/v1/admin/membership');
  }

  /** Every membership change this node committed, oldest first, each with its certificate (hex). */
  membershipHistory(): Promise<MembershipHistoryResponse> {
    return requestJson(this.target, 'GET', '/v1/admin/membership/history');
  }

  /**
   * Ask this node to take part in a membership change session (every member the change keeps must be
   * asked with the same request). The operator's hook sees the request first, unless `approved`.
   */
  async changeMembership(request: Extract<SessionRequest, { operation: 'membership' }>, o: { approved?: boolean } = {}): Promise<ChangeMembershipResponse> {
    if (!o.approved) await this.authorize(request);
    const body: ChangeMembershipRequest = { sessionId: request.sessionId, epoch: request.epoch, members: request.members };
    return requestJson(this.target, 'POST', '/v1/admin/membership', body);
  }

  /** Hand this node the certificate (hex) of a membership change it missed; it checks it against its own membership. */
  applyMembership(o: { epoch: number; members: MemberJson[]; certificate: string }): Promise<ApplyMembershipResponse> {
    return requestJson(this.target, 'POST', '/v1/admin/membership/certificate', { epoch: o.epoch, members: o.members, certificate: o.certificate });
  }


  createTenant(name: string): Promise<TenantResponse> {
    return requestJson(this.target, 'POST', '/v1/admin/tenants', { name });
  }

  /** A new API key of `tenant` on this node. The key is in the answer only; the node keeps its hash. */
  createApiKey(tenant: string, role?: 'tenant' | 'admin'): Promise<CreateApiKeyResponse> {
    return requestJson(this.target, 'POST', '/v1/admin/api-keys', { tenant, ...(role ? { role } : {}) });
  }

  async listApiKeys(tenant?: string): Promise<ApiKeyInfoJson[]> {
    const r = await requestJson<{ apiKeys: ApiKeyInfoJson[] }>(this.target, 'GET', `/v1/admin/api-keys${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`);
    return r.apiKeys;
  }

  revokeApiKey(id: string): Promise<ApiKeyInfoJson> {
    return requestJson(this.target, 'POST', `/v1/admin/api-keys/${encodeURIComponent(id)}/revoke`, {});
  }

  getPolicy(): Promise<PolicyResponse> {
    return requestJson(this.target, 'GET', '/v1/admin/policy');
  }

  /** Replace this node's policy rules (node/governance/policy.ts rule types), in order: the first deny wins. */
  setPolicy(rules: readonly unknown[]): Promise<PolicyResponse> {
    return requestJson(this.target, 'POST', '/v1/admin/policy', { rules });
  }

  /** Emergency fail-open on this node for `durationMs` (default: the node's configured window); it reverts by itself. */
  enableFailOpen(durationMs?: number): Promise<FailOpenJson> {
    return requestJson(this.target, 'POST', '/v1/admin/policy/fail-open', durationMs !== undefined ? { durationMs } : {});
  }

  disableFailOpen(): Promise<FailOpenJson> {
    return requestJson(this.target, 'POST', '/v1/admin/policy/fail-open/disable', {});
  }

  /**
   * Rotate this node's KEK: the node re-wraps every record under a new KEK, then destroys the old one
   * (or first finishes a rotation a crash interrupted). Admin key. Answers the old and new KEK ids.
   */
  rotateKek(): Promise<KekRotateResponse> {
    return requestJson(this.target, 'POST', '/v1/admin/kek/rotate', {});
  }

  /** This node's audit log and checkpoints, as stored (the node signs a checkpoint of its head first). */
  async auditLog(): Promise<AuditExport> {
    const r = await requestJson<AuditLogResponse>(this.target, 'GET', '/v1/admin/audit');
    const parse = (text: unknown): unknown => {
      try {
        return typeof text === 'string' ? (JSON.parse(text) as unknown) : text;
      } catch {
        return text; // the verifier reports it as malformed
      }
    };
    return { format: r.format as AuditExport['format'], entries: (r.entries ?? []).map(parse) as never, checkpoints: (r.checkpoints ?? []).map(parse) as never };
  }

  /**
   * Fetch this node's audit log and verify it offline (core/audit-verify.ts): the hash chain and every
   * checkpoint's ML-DSA-65 signature under `identityPublicKey`. Pass the key from a source you trust
   * (the cluster membership); without it, the key the node itself reports is used, which only shows the
   * log is consistent with what the node claims to be.
   */
  async verifyAuditLog(identityPublicKey?: Uint8Array | string): Promise<AuditVerification & { identityKeySource: 'given' | 'node' }> {
    const given = identityPublicKey !== undefined;
    const key = given
      ? typeof identityPublicKey === 'string'
        ? bytesOrHex(identityPublicKey, 'identityPublicKey')
        : identityPublicKey
      : fromHex((await this.info()).identityPublicKey, 'identityPublicKey');
    const log = await this.auditLog();
    return { ...verifyAuditLog(log, key), identityKeySource: given ? 'given' : 'node' };
  }

  /** Run the policy hook, then ask the node to join. A refusal declines the session at the node. */
  async join<T>(request: SessionRequest, skipApproval = false): Promise<T> {
    if (!skipApproval) {
      try {
        await this.authorize(request);
      } catch (e) {
        await this.decline(request).catch(() => undefined);
        throw e;
      }
    }
    const { operation, keyId, ...rest } = request as SessionRequest & { keyId: string };
    switch (operation) {
      case 'keygen':
        return requestJson(this.target, 'POST', '/v1/keys', { keyId, ...rest });
      case 'sign':
      case 'decapsulate':
      case 'refresh':
      case 'rotate':
      case 'reshare':
        return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/${operation}`, rest);
      case 'membership':
        return this.changeMembership(request as Extract<SessionRequest, { operation: 'membership' }>, { approved: true }) as Promise<T>;
      case 'retire':
      case 'archive':
      case 'activate':
      case 'destroy': {
        const r = request as Extract<SessionRequest, { operation: TransitionOperation }>;
        return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/state`, { sessionId: r.sessionId, version: r.version, state: r.state });
      }
      case 'export': {
        const r = request as Extract<SessionRequest, { operation: 'export' }>;
        return requestJson(this.target, 'POST', `/v1/keys/${encodeURIComponent(keyId)}/export`, {
          sessionId: r.sessionId,
          wrappingKeys: r.wrappingKeys,
          ...(r.version ? { version: r.version } : {}),
          ...(r.reshare ? { reshare: r.reshare } : {}),
        });
      }
      case 'import': {
        const r = request as Extract<SessionRequest, { operation: 'import' }>;
        return requestJson(this.target, 'POST', '/v1/import', {
          sessionId: r.sessionId,
          keyId: r.keyId,
          bundle: r.bundle,
          exportable: r.exportable,
          threshold: r.threshold,
        });
      }
    }
  }
}

/**
 * Run `work` (synchronous CPU work) once the requests just started have gone out: one turn of the
 * event loop first, so their bytes are on the sockets and the players compute while this process does.
 */
async function whileAsked<T>(work: () => T): Promise<T> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  return work();
}

export function newSessionId(): string {
  return toHex(randomBytes(16));
}

/** What an operator's hook sees for a presigned sign (its players are the list's nodes). */
function presignedRequest(keyId: string, version: number, message: string, commitments: PresignedCommitmentJson[], path?: string): SessionRequest {
  return { operation: 'sign', sessionId: newSessionId(), keyId, version, message, players: commitments.map((c) => c.node), commitments, ...(path !== undefined ? { path } : {}) };
}

export function packageFromJson(j: PublicKeyPackageJson): PublicKeyPackage {
  return {
    suite: getSuite(j.suite).id,
    threshold: j.threshold,
    parties: j.parties,
    // The committee when it is not 1..n (core/committee.ts): checked here, so a bad one is refused up front.
    ...(j.indices !== undefined ? { indices: checkCommittee(j.indices, j.threshold, 'publicPackage.indices') } : {}),
    epoch: j.epoch,
    commitments: j.commitments.map((c, i) => fromHex(c, `commitments[${i}]`)),
    verifyingShares: j.verifyingShares.map((c, i) => fromHex(c, `verifyingShares[${i}]`)),
  };
}

/** Run a core/ check on caller input (core/derive.ts, core/committee.ts): its TesseraError becomes the SDK's BAD_INPUT. */
function derivationInput<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw isTesseraError(e) ? new TesseraClientError('BAD_INPUT', e.message) : e;
  }
}

/** A derivation path option, checked (core/derive.ts) and canonical; undefined for none or "m" (the key itself). */
function derivationPathOption(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const steps = derivationInput(() => parseDerivationPath(path));
  return steps.length === 0 ? undefined : formatDerivationPath(steps);
}

/** Whether a key is threshold ECDSA; `prehashed` on any other key is refused here, before any node is asked. */
function isEcdsaKey(info: KeyInfo, prehashed?: boolean): boolean {
  const ecdsa = getSuite(info.suite).kind === 'ecdsa';
  if (prehashed !== undefined && !ecdsa) {
    throw new TesseraClientError('BAD_INPUT', `prehashed: key ${info.keyId} is a ${info.suite} key, which signs the message itself; only ecdsa-secp256k1 and ecdsa-p256 keys sign a digest`);
  }
  return ecdsa;
}

/** A key's chain code, or the clear error for a key without one. */
function chainCodeOf(info: KeyInfo): Uint8Array {
  if (info.chainCode === undefined) {
    throw new TesseraClientError(
      'BAD_INPUT',
      `key ${info.keyId} version ${info.version} has no chain code: child keys exist for secp256k1, bip340 and ed25519 keys made since derivation exists`,
    );
  }
  const hex = info.chainCode;
  return derivationInput(() => fromHex(hex, 'chainCode', 32));
}

/** The public key package of the child of `path` (core/derive.ts), from a key's public record. */
function childPackageOf(info: KeyInfo, pkg: PublicKeyPackage, path: string): PublicKeyPackage {
  const chainCode = chainCodeOf(info);
  return derivationInput(() => {
    const suite = derivableSuite(info.suite);
    const d = deriveChild(suite, packageGroupKey(suite, pkg), chainCode, parseDerivationPath(path));
    return derivePublicPackage(suite, pkg, d.tweak);
  });
}

/** The child key of `path` from a key's public record (group key and chain code). */
function childKeyOf(info: KeyInfo, pkg: PublicKeyPackage, path: string): ChildKeyInfo {
  const chainCode = chainCodeOf(info);
  const child = derivationInput(() => derivationInfo(info.suite, pkg, chainCode, parseDerivationPath(path)));
  return {
    keyId: info.keyId,
    version: info.version,
    suite: info.suite,
    scheme: info.scheme,
    path: child.path,
    publicKey: toHex(child.publicKey),
    chainCode: toHex(child.chainCode),
    ...(child.xpub !== undefined ? { xpub: child.xpub } : {}),
  };
}

export interface KeygenOptions {
  suite: string;
  keyId?: string;
  threshold?: number;
  exportable?: boolean;
  /** Rotate the key this long after each version is created; the nodes enforce it (node/governance/scheduler.ts). */
  rotationPeriodMs?: number;
}

/** A signature, and which path made it (SDK-side only; not part of the HTTP contract). */
export interface SignResult extends SignResponse {
  /** presigned: one round trip per player from cached presignatures; two-round: a node session. */
  path: 'presigned' | 'two-round';
  /** When signed with a child key: its derivation path (canonical, e.g. m/0/5). */
  derivationPath?: string;
}

/** A child key of a key (core/derive.ts): what `publicKey --path` shows. */
export interface ChildKeyInfo {
  keyId: string;
  version: number;
  suite: string;
  scheme: string;
  /** Canonical path, "m" for the key itself. */
  path: string;
  /** The child's public key in the suite's standard encoding, hex (bip340 x-only). */
  publicKey: string;
  /** The child's chain code, hex. */
  chainCode: string;
  /** secp256k1 and bip340: the child's BIP-32 xpub. */
  xpub?: string;
}

export interface SignOptions {
  keyId: string;
  message: Uint8Array | string;
  /** The signing nodes (default: the first t live nodes; docs/sdk.md, "Player selection"). */
  players?: number[];
  /** Default the newest active version. */
  version?: number;
  /** false: the two-round session path even when presignatures are cached. Default: the Cluster's presign.enabled. */
  presigned?: boolean;
  /**
   * Sign with the child key of this non-hardened BIP-32 path, e.g. "m/0/5" (secp256k1, bip340 and
   * ed25519 keys; core/derive.ts). In the two-round session the path is part of the session digest, so
   * every player signs with the same child; from presignatures every player is sent the same path, and
   * the SDK combines the shares under the child's public package (shares for another path would not
   * combine, and the two-round session then signs).
   */
  path?: string;
  /**
   * Threshold ECDSA keys (ecdsa-secp256k1, ecdsa-p256) only: `message` is already the 16..64-byte digest
   * to sign (e.g. Keccak-256 for Ethereum). Default: the nodes sign SHA-256(message).
   */
  prehashed?: boolean;
}

/**
 * One operator holding every node's credentials. Node i is the NodeClient whose `index` option is i
 * (else the i-th given): after a membership change the indices need not be 1..n (a removed node leaves a gap).
 */
/** Cluster.exportKey's options (its `destination` is an import-keys file's threshold and node count). */
export interface ExportKeyOptions {
  keyId: string;
  /** ML-KEM-768 or X-Wing public keys: one for all shares, or one per share (per destination node with `destination`). */
  wrappingKeys: readonly (Uint8Array | string)[];
  version?: number;
}

export class Cluster {
  readonly nodes: readonly NodeClient[];
  /** How this Cluster's signatures were made (counters). */
  readonly presignStats: PresignStats = { presigned: 0, twoRound: 0, fallbacks: 0, batches: 0, commitments: 0, fetchErrors: 0 };
  private readonly presigner: Presigner;
  /** Threshold ECDSA presignatures (sdk/ecdsa-presign.ts): public ids and R per key version, epoch and signer set. */
  private readonly ecdsaPresignatures = new EcdsaPresignCache();
  /** Key records by [keyId, version or 0 for "newest active"], so that a sign looks no key up. */
  private readonly keys = new Map<string, { info: KeyInfo; pkg: PublicKeyPackage }>();
  private readonly keyLoads = new Map<string, Promise<{ info: KeyInfo; pkg: PublicKeyPackage }>>();
  /** The nodes' indices, ascending (`nodes` is in this order). */
  readonly indices: readonly number[];
  private readonly byIndex: ReadonlyMap<number, NodeClient>;
  constructor(
    nodes: readonly NodeClient[],
    private readonly defaults: { threshold?: number; presign?: PresignOptions } = {},
  ) {
    if (nodes.length < 2) throw new TesseraClientError('BAD_INPUT', 'a cluster needs at least 2 nodes');
    const indexed = nodes.map((n, k) => [n.options.index ?? k + 1, n] as const).sort((a, b) => a[0] - b[0]);
    const twice = indexed.find(([i], k) => k > 0 && indexed[k - 1]![0] === i);
    if (twice) throw new TesseraClientError('BAD_INPUT', `node ${twice[0]} is given twice`);
    this.nodes = indexed.map(([, n]) => n);
    this.indices = indexed.map(([i]) => i);
    this.byIndex = new Map(indexed);
    this.presigner = new Presigner(
      async (node, keyId, version, count) => {
        const known = this.keys.get(JSON.stringify([keyId, version]))?.info;
        const batch = await this.node(node).presignatures(keyId, count, { version, ...(known ? { suite: known.suite } : {}) });
        // A batch for another epoch than the record this SDK holds: the record is stale (refreshed elsewhere).
        if (known && batch.epoch !== known.epoch) this.forgetKeyInfo(keyId);
        return batch;
      },
      this.presignStats,
      defaults.presign,
    );
  }

  get size(): number {
    return this.nodes.length;
  }

  private node(i: number): NodeClient {
    const n = this.byIndex.get(i);
    if (!n) throw new TesseraClientError('BAD_INPUT', `no node ${i} in this cluster (nodes ${this.indices.join(',')})`);
    return n;
  }

  /** The last probe of every node's /ready (shared by concurrent callers while in flight). */
  private probing?: Promise<Map<number, 'ready' | 'not-ready' | 'no-answer'>>;
  private lastProbe?: { at: number; results: Map<number, 'ready' | 'not-ready' | 'no-answer'> };

  /**
   * Nodes believed live, at least `need` of them, in the order players are picked from. Without a
   * probe when the first `need` nodes not known to be down all answered a request within
   * LIVENESS_TTL_MS (what every request teaches, NodeClient.liveness); otherwise every node's /ready is
   * probed concurrently (PROBE_TIMEOUT_MS) and the nodes that answered are returned, ready ones first.
   * Fewer than `need`: UNAVAILABLE naming every node that did not answer and why. Only the nodes of
   * `among` count (a key's committee: core/committee.ts partyIndices), all of them by default.
   */
  private async liveNodes(need: number, why: string, among: readonly number[] = this.indices): Promise<number[]> {
    const now = Date.now();
    const recent = (t: number | undefined) => t !== undefined && now - t < LIVENESS_TTL_MS;
    const alive = (n: NodeClient) => recent(n.liveness.answeredAt) && !((n.liveness.failedAt ?? 0) > n.liveness.answeredAt!);
    const down = (n: NodeClient) => recent(n.liveness.failedAt) && !((n.liveness.answeredAt ?? 0) > n.liveness.failedAt!);
    const candidates = among.filter((i) => !down(this.node(i)));
    if (candidates.length >= need && candidates.slice(0, need).every((i) => alive(this.node(i)))) return candidates;
    let results = this.lastProbe && now - this.lastProbe.at < LIVENESS_TTL_MS && this.lastProbe.at >= Math.max(...this.nodes.map((n) => n.liveness.failedAt ?? 0)) ? this.lastProbe.results : undefined;
    if (!results) {
      this.probing ??= Promise.all(this.nodes.map((n) => n.probe(PROBE_TIMEOUT_MS)))
        .then((r) => {
          const m = new Map(r.map((status, k) => [this.indices[k]!, status] as const));
          this.lastProbe = { at: Date.now(), results: m };
          return m;
        })
        .finally(() => (this.probing = undefined));
      results = await this.probing;
    }
    const answered = [...results].filter(([i, st]) => st !== 'no-answer' && among.includes(i));
    const live = [...answered.filter(([, st]) => st === 'ready'), ...answered.filter(([, st]) => st === 'not-ready')].map(([i]) => i);
    if (live.length < need) {
      const dead = among.filter((i) => results!.get(i) === 'no-answer');
      const of = among.length === this.size ? `${this.size} nodes` : `${among.length} nodes (${among.join(',')})`;
      throw new TesseraClientError(
        'UNAVAILABLE',
        `${live.length} of ${of} answer, ${need} needed ${why}: ${dead.map((i) => `${this.node(i).label} did not answer (${this.node(i).liveness.failure ?? 'no answer'})`).join('; ')}`,
        dead.length ? { node: dead[0]! } : {},
      );
    }
    return live;
  }

  /**
   * The key record and the players of a call: `given` (which must hold shares of the key), else the
   * first t live nodes of the key's committee (core/committee.ts partyIndices: after a reshare, any
   * set of nodes), the record looked up at a node holding it unless cached.
   */
  private async keyAndPlayers(keyId: string, version: number | undefined, given: readonly number[] | undefined): Promise<{ info: KeyInfo; pkg: PublicKeyPackage; players: number[] }> {
    if (given !== undefined) {
      if (!Array.isArray(given) || given.length === 0) throw new TesseraClientError('BAD_INPUT', 'players: expected a non-empty list of node numbers');
      given.forEach((i) => this.node(i));
      let entry = await this.keyInfo(keyId, version, given[0]!);
      if (given.some((i) => !isParty(entry.pkg, i))) {
        // The record may be from before a reshare elsewhere: look it up once more before refusing.
        this.forgetKeyInfo(keyId);
        entry = await this.keyInfo(keyId, version, given[0]!);
      }
      const outside = given.filter((i) => !isParty(entry.pkg, i));
      if (outside.length > 0) {
        throw new TesseraClientError(
          'BAD_INPUT',
          `players: node${outside.length > 1 ? 's' : ''} ${outside.join(',')} hold${outside.length > 1 ? '' : 's'} no share of key ${keyId} version ${entry.info.version} (its nodes: ${partyIndices(entry.pkg).join(',')})`,
        );
      }
      return { ...entry, players: [...given] };
    }
    const cached = this.keys.get(JSON.stringify([keyId, version ?? 0]));
    const entry = cached ?? (await this.keyInfo(keyId, version));
    const holders = partyIndices(entry.pkg);
    const live = await this.liveNodes(entry.info.threshold, `for key ${keyId} (threshold ${entry.info.threshold})`, holders);
    return { ...entry, players: live.slice(0, entry.info.threshold) };
  }

  /**
   * Run a call whose players may be chosen here: if they were (no `players` given) and a player did not
   * answer at all (refused connection, reset, NODE_TIMEOUT), or answered NOT_FOUND (the key was reshared
   * elsewhere and left that node: the record this SDK held is forgotten on the failure and read again),
   * choose again and run it once more. Given players are used as given: their failure is the answer.
   */
  private async withLivePlayers<T>(given: readonly number[] | undefined, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (given !== undefined || !(isUnreachable(e) || (e instanceof TesseraClientError && e.code === 'NOT_FOUND'))) throw e;
      return call();
    }
  }

  /**
   * Every version of every key of this cluster's tenant (API keys); only those in `state` if given. Asked
   * of every node that answers, merged: after a reshare a key is held by its committee only, so no one
   * node lists every key. Each version's record is the newest epoch any node answered (a node that
   * missed a commit holds an older one); ordered by key id, then version (as a node orders them).
   */
  async listKeys(o: { state?: KeyState } = {}): Promise<KeyInfo[]> {
    const live = await this.liveNodes(1, 'to list keys');
    const settled = await Promise.allSettled(live.map((i) => this.node(i).listKeys(o)));
    const lists = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (lists.length === 0) throw (settled[0] as PromiseRejectedResult).reason;
    const newest = new Map<string, KeyInfo>();
    for (const k of lists.flat()) {
      const slot = JSON.stringify([k.keyId, k.version]);
      const held = newest.get(slot);
      if (!held || k.epoch > held.epoch) newest.set(slot, k);
    }
    return [...newest.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : a.version - b.version));
  }

  /** A KEM key's record for sealing to it: the version asked (default the newest active), which must be active. */
  private async kemKey(keyId: string, version: number | undefined): Promise<{ info: KeyInfo; suite: string }> {
    const cached = this.keys.get(JSON.stringify([keyId, version ?? 0]));
    const { info } = cached ?? (await this.keyInfo(keyId, version, (await this.liveNodes(1, `to look key ${keyId} up`))[0]!));
    kemSuiteOf(info.suite);
    if (info.state !== 'active') {
      throw new TesseraClientError('BAD_STATE', `key ${keyId} version ${info.version} is ${info.state}: new messages are sealed to an active version`);
    }
    return { info, suite: info.suite };
  }

  /**
   * Seal `plaintext` to a KEM key (hpke-x25519, hpke-p256) with HPKE base mode (RFC 9180 §5.1.1
   * SetupBaseS, §5.2 Seal; ciphersuite: the key's DHKEM, HKDF-SHA256, AES-128-GCM, sdk/seal.ts). A
   * public-key operation: no node session, no operator hook (only the key record is read, cached).
   * `encodeSealedMessage` packs { enc, ciphertext } into the CLI's sealed form.
   */
  async seal(keyId: string, plaintext: Uint8Array, aad?: Uint8Array, o: { info?: Uint8Array; version?: number } = {}): Promise<{ enc: Uint8Array; ciphertext: Uint8Array; version: number }> {
    if (!(plaintext instanceof Uint8Array)) throw new TesseraClientError('BAD_INPUT', 'plaintext: expected bytes (Uint8Array)');
    const { info, suite } = await this.kemKey(keyId, o.version);
    const sealed = await sealToPublicKey(suite, info.publicKey, plaintext, { ...(aad !== undefined ? { aad } : {}), ...(o.info !== undefined ? { info: o.info } : {}) });
    return { ...sealed, version: info.version };
  }

  /**
   * The raw KEM to a key (RFC 9180 §4.1 Encap): `enc` to send, and the shared secret that
   * `decapsulate` of that enc gives. The secret is the caller's to wipe. No node session.
   */
  async encapsulate(keyId: string, o: { version?: number } = {}): Promise<{ enc: Uint8Array; sharedSecret: Uint8Array; version: number }> {
    const { info, suite } = await this.kemKey(keyId, o.version);
    return { ...(await encapsulateToPublicKey(suite, info.publicKey)), version: info.version };
  }

  /**
   * Open a message sealed to a KEM key by any RFC 9180 sender (base mode, the key's DHKEM, HKDF-SHA256,
   * AES-128-GCM): threshold decapsulation of `enc` (as `decapsulate`, one round trip per player), then
   * the key schedule (§5.1) from that shared secret with `info` and Open (§5.2) with `aad`. The shared
   * secret and the AEAD key are wiped before returning. `enc` may be the sealed form of
   * encodeSealedMessage's enc as bytes or hex (optional 0x). A wrong aad, info, key or a corrupted
   * message: DECRYPTION_FAILED.
   */
  async open(
    keyId: string,
    enc: Uint8Array | string,
    ciphertext: Uint8Array,
    aad?: Uint8Array,
    o: { info?: Uint8Array; version?: number; players?: number[] } = {},
  ): Promise<Uint8Array> {
    for (const [what, v] of [['ciphertext', ciphertext], ['aad', aad], ['info', o.info]] as const) {
      if (v !== undefined && !(v instanceof Uint8Array)) throw new TesseraClientError('BAD_INPUT', `${what}: expected bytes (Uint8Array)`);
    }
    const { secret, suite } = await this.decapsulateSecret({ keyId, enc, ...(o.players ? { players: o.players } : {}), ...(o.version !== undefined ? { version: o.version } : {}) });
    let ctx: ReturnType<typeof createContext> | undefined;
    try {
      ctx = createContext(hpkeParams(kemSuiteOf(suite)), secret, o.info ?? new Uint8Array(0));
      return ctx.open(aad ?? new Uint8Array(0), ciphertext);
    } catch (e) {
      if (isTesseraError(e) && e.code === 'DECRYPTION_FAILED') {
        throw new TesseraClientError('DECRYPTION_FAILED', `open: the message does not authenticate under key ${keyId} with this enc, info and aad (a wrong aad or info, another key or version, or a corrupted message)`);
      }
      throw isTesseraError(e) ? new TesseraClientError(e.code, e.message) : e;
    } finally {
      ctx?.destroy();
      zeroize(secret);
    }
  }

  /**
   * Every involved operator's hook runs first; only if all approve is any node asked. So a refusal
   * gives a clear error and no node is left waiting for a session that will never start.
   */
  private async run<T>(players: readonly number[], request: SessionRequest, recover?: (node: number) => Promise<T>, approved = false): Promise<T[]> {
    if (!approved) await Promise.all(players.map((i) => this.node(i).authorize(request)));
    const settled = await Promise.allSettled(players.map((i) => this.node(i).join<T>(request, true)));
    const failures = settled.flatMap((r, k) => (r.status === 'rejected' ? [[players[k]!, r.reason] as const] : []));
    if (failures.length && recover && request.keyId !== undefined) {
      // A state change is reported exactly (sessions.md): if any node holds this session's commit
      // certificate, the change happened; repair hands the certificate to the nodes that missed it,
      // and the call reports success. Without a certificate anywhere, it committed nowhere.
      const report = await this.repair(request.keyId).catch(() => undefined);
      const certified = report?.certificates.some((c) => c.sessionId === request.sessionId);
      if (certified) {
        // The result comes from a node that answered, else from one repair reached: never from a
        // fixed node, which may be the one that crashed (node 1 killed after it committed).
        const answered = settled.find((r): r is PromiseFulfilledResult<Awaited<T>> => r.status === 'fulfilled');
        const value = answered ? answered.value : await recoverFrom(recover, [...report!.nodes.filter((n) => n.problems.length === 0).map((n) => n.node), ...players]);
        return players.map(() => value);
      }
      // No certificate reached this SDK. The change committed nowhere, unless a node that released its
      // vote, or a node that cannot be asked, may hold one: then say so instead of "failed".
      const mine = report?.nodes.filter((n) => n.waiting?.sessionId === request.sessionId) ?? [];
      const unreachable = report?.nodes.filter((n) => n.problems.some((p) => !p.startsWith('session '))).map((n) => n.node) ?? [];
      const released = mine.filter((n) => n.waiting!.released).map((n) => n.node);
      if (report === undefined || released.length > 0 || (unreachable.length > 0 && mine.length > 0)) {
        const why =
          report === undefined
            ? 'the nodes could not be asked whether it committed'
            : released.length > 0
              ? `node(s) ${released.join(',')} released their votes, so a certificate may exist${unreachable.length ? ` on node(s) ${unreachable.join(',')}, which could not be asked` : ''}`
              : `node(s) ${mine.map((n) => n.node).join(',')} staged it and node(s) ${unreachable.join(',')} could not be asked`;
        throw new TesseraClientError(
          'OUTCOME_UNKNOWN',
          `the ${request.operation} of key ${request.keyId} may or may not have committed: ${why}; run \`tessera repair --key-id ${request.keyId}\` once every node is up`,
          { node: failures[0]![0] },
        );
      }
    }
    if (failures.length) {
      await this.nameSilentNodes(failures);
      // A node is reported as a culprit only on evidence this SDK re-checked (sessions.md, "Evidence and blame").
      const errs = await Promise.all(failures.map(([, e]) => this.vetCulprits(e as TesseraClientError, request)));
      // Prefer the error that names culprits or a cause over the "aborted" echoes of the others.
      const best = errs.find((e) => e.culprits?.length) ?? errs.find((e) => e.code !== 'SESSION_ABORTED') ?? errs[0]!;
      if (request.keyId !== undefined && errs.some((e) => e.code === 'EPOCH_MISMATCH' || /DIGEST_MISMATCH|EPOCH_MISMATCH/.test(e.message))) {
        // Nodes that disagree on the key: say which node holds which version and epoch (sessions.md, "results are reported exactly").
        const held = await this.versionsHeld(request.keyId, players);
        throw new TesseraClientError(best.code, `${best.message}; ${held}`, { ...(best.status !== undefined ? { status: best.status } : {}), ...(best.node !== undefined ? { node: best.node } : {}), culprits: best.culprits });
      }
      throw best;
    }
    return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  }

  /**
   * Several players of a session timed out: the ones still answering /ready were waiting in the session
   * for the others. Throw NODE_TIMEOUT naming the nodes that answer nothing (and refresh what the SDK
   * knows of every player's liveness); return when that does not single any out.
   */
  private async nameSilentNodes(failures: readonly (readonly [number, unknown])[]): Promise<void> {
    const timedOut = failures.filter(([, e]) => e instanceof TesseraClientError && e.code === 'NODE_TIMEOUT').map(([i]) => i);
    if (timedOut.length < 2) return;
    const probed = await Promise.all(timedOut.map(async (i) => [i, await this.node(i).probe(PROBE_TIMEOUT_MS)] as const));
    const silent = probed.filter(([, st]) => st === 'no-answer').map(([i]) => i);
    if (silent.length === 0 || silent.length === timedOut.length) return;
    const waiting = timedOut.filter((i) => !silent.includes(i));
    const first = this.node(silent[0]!);
    throw new TesseraClientError(
      'NODE_TIMEOUT',
      `${silent.map((i) => this.node(i).label).join(', ')} did not answer within ${first.options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms (node${waiting.length > 1 ? 's' : ''} ${waiting.join(', ')} answer${waiting.length > 1 ? '' : 's'} /ready: waiting for it in the session)`,
      { node: silent[0]! },
    );
  }

  /**
   * Keep only the culprits whose transferable evidence verifies under their own identity key (each
   * node's key as that node reports it): two conflicting messages the culprit signed. A culprit named
   * without such evidence is dropped from `culprits` and mentioned in the message as unverified, so no
   * node can get another blamed on its word.
   */
  private async vetCulprits(e: TesseraClientError, request: SessionRequest): Promise<TesseraClientError> {
    if (!(e instanceof TesseraClientError) || e.culprits.length === 0) return e;
    const evidence = e.evidence ? decodeEvidence(fromHex(e.evidence, 'evidence')) : [];
    const verified: number[] = [];
    for (const c of e.culprits) {
      const items = evidence.filter((x) => x.signer === c);
      if (items.length === 0 || !this.byIndex.has(c)) continue;
      let key: Uint8Array;
      try {
        key = fromHex((await this.node(c).info()).identityPublicKey, 'identityPublicKey');
      } catch {
        continue;
      }
      // Envelope evidence is checked against this session and the rounds its operation runs.
      // The key's suite where the request names it (keygen, reshare, import); else the rounds of every suite.
      const suite = request.operation === 'keygen' || request.operation === 'reshare' ? request.suite : request.operation === 'import' ? request.bundle.suite : undefined;
      const context = { session: fromHex(request.sessionId, 'sessionId'), declaredRounds: declaredRounds(request.operation as Operation, isSuiteId(suite) ? suite : undefined) };
      if (items.some((x) => verifyEquivocationEvidence(x, key, context))) verified.push(c);
    }
    if (verified.length === e.culprits.length) return e;
    const dropped = e.culprits.filter((c) => !verified.includes(c));
    return new TesseraClientError(e.code, `${e.message} (node ${e.node ?? '?'} named node(s) ${dropped.join(',')} without evidence this SDK could verify: not reported as culprits)`, {
      ...(e.status !== undefined ? { status: e.status } : {}),
      ...(e.node !== undefined ? { node: e.node } : {}),
      culprits: verified,
      ...(e.evidence !== undefined ? { evidence: e.evidence } : {}),
    });
  }

  /** "node 1 holds version 2 (epoch 0, active); node 3 holds none" for the players of a failed session. */
  private async versionsHeld(keyId: string, players: readonly number[]): Promise<string> {
    const parts = await Promise.all(
      players.map(async (i) => {
        try {
          const k = await this.node(i).getKey(keyId);
          return `node ${i} holds version ${k.version} (epoch ${k.epoch}, ${k.state})`;
        } catch (e) {
          return (e as TesseraClientError).code === 'NOT_FOUND' ? `node ${i} holds no version` : `node ${i} did not answer`;
        }
      }),
    );
    return parts.join('; ');
  }

  async keygen(o: KeygenOptions): Promise<KeyInfo> {
    const threshold = o.threshold ?? this.defaults.threshold ?? Math.floor(this.size / 2) + 1;
    if (threshold > this.size) throw new TesseraClientError('BAD_PARAMETERS', `threshold ${threshold} is above the node count ${this.size}`);
    getSuite(o.suite);
    const request: SessionRequest = {
      operation: 'keygen',
      sessionId: newSessionId(),
      keyId: o.keyId ?? `key-${toHex(randomBytes(8))}`,
      suite: o.suite,
      threshold,
      exportable: o.exportable ?? false,
      ...(o.rotationPeriodMs !== undefined ? { rotationPeriodMs: o.rotationPeriodMs } : {}),
    };
    const results = await this.run<KeyInfo>([...this.indices], request, (node) => this.getKey(request.keyId!, 1, node));
    assertSame(results.map((r) => r.publicKey), 'public key');
    return results[0]!;
  }

  /**
   * Finish or undo every interrupted commit of a key from the evidence the nodes hold (`tessera
   * repair`). Each node verifies what it is handed against its own membership, so no node trusts this
   * SDK or another node:
   * 1. a certificate any node holds is handed to every node that lacks it and holds the key version or
   *    is in its committee (they commit); a reshare's certificate goes, with the new package, to old
   *    holders left out of the new committee that still hold the old epoch (the handoff: they erase);
   * 2. a change every one of its voters staged (same session and result) is finished: each voter
   *    attests it staged it, each releases its stored vote on seeing every attestation, and the votes
   *    are the certificate. A change's voters are its session's players (a reshare's: the dealers and
   *    the new committee), as each node stored them; nodes outside the session take no part;
   * 3. a change some voter never staged is dropped wherever its vote was never released (no certificate
   *    can exist); a node that released its vote keeps waiting (only a cheating node gets there).
   * A node that cannot be asked leaves its key's staged changes waiting. Says what happened per node.
   */
  async repair(keyId: string): Promise<RepairReport> {
    const statuses = await Promise.allSettled(this.nodes.map((n) => n.commitStatus(keyId)));
    const known = statuses.map((r) => (r.status === 'fulfilled' ? r.value : r.reason?.code === 'NOT_FOUND' ? null : undefined));
    const certs = new Map<string, string>();
    for (const st of known) for (const c of st?.certificates ?? []) certs.set(c.sessionId, c.certificate);
    // Per position k in `nodes`: idx(k) is the node's index, at(i) the position of node i.
    const idx = (k: number) => this.indices[k]!;
    const at = (i: number) => this.indices.indexOf(i);
    const reports = this.nodes.map((_, k) => ({ node: idx(k), applied: [] as RepairReport['nodes'][number]['applied'], problems: [] as string[], dropped: [] as string[] }));
    const unreachable = known.flatMap((st, k) => (st === undefined ? [k] : []));
    for (const k of unreachable) {
      const e = (statuses[k] as PromiseRejectedResult).reason as TesseraClientError;
      reports[k]!.problems.push(`${e.code ?? 'ERROR'}: ${e.message}`);
    }
    const staged = known.map((st) => st?.staged);
    const votersOf = (s: NonNullable<CommitStatusResponse['staged']>) => s.voters ?? [...this.indices];

    // 2. Every voter of a change staged it: attest, release, assemble the certificate (voters only).
    const sessions = new Map(staged.flatMap((s) => (s ? [[s.sessionId, s] as const] : [])));
    for (const [sessionId, first] of sessions) {
      const voters = votersOf(first);
      if (certs.has(sessionId) || !voters.every((v) => staged[at(v)]?.sessionId === sessionId && staged[at(v)]!.resultDigest === first.resultDigest)) continue;
      try {
        const attestations = await Promise.all(voters.map((v) => this.node(v).attestStaged(keyId, sessionId)));
        const list = attestations.map((a) => ({ node: a.node, attestation: a.attestation }));
        const released = await Promise.all(voters.map((v) => this.node(v).releaseVote(keyId, sessionId, list)));
        const cert = encodeCertificate({
          session: fromHex(sessionId, 'sessionId'),
          operation: first.operation as Operation,
          tenant: first.tenant,
          keyId,
          version: first.version,
          resultDigest: fromHex(first.resultDigest, 'resultDigest'),
          votes: new Map(released.map((r) => [r.node, fromHex(r.vote, 'vote')] as const)),
        });
        certs.set(sessionId, toHex(cert));
      } catch (e) {
        for (const v of voters) reports[at(v)]?.problems.push(`session ${sessionId}: could not assemble its certificate: ${(e as Error).message}`);
      }
    }

    // 1. Hand every certificate to every node that lacks it. Lifecycle transitions must land in the
    //    order they were made (retired -> destroyed): the certificate that made each version what it is
    //    now at the holders goes last, and a pass is repeated while it brings something forward.
    // Per node, the certificates it could not apply (a later pass that applies one clears it).
    const handFailures = this.nodes.map(() => new Map<string, string>());
    const handOut = async (known: readonly (CommitStatusResponse | null | undefined)[]) => {
      const current = new Set(known.flatMap((st) => (st?.versions ?? []).flatMap((v) => (v.certSessionId ? [v.certSessionId] : []))));
      const committees = currentCommittees(known);
      const described = new Map<string, { operation: string; version: number } | undefined>();
      const describe = (sessionId: string, certificate: string) => {
        if (!described.has(sessionId)) {
          try {
            const c = decodeCertificate(fromHex(certificate, 'certificate'));
            described.set(sessionId, { operation: c.operation, version: c.version });
          } catch {
            described.set(sessionId, undefined); // the node it is handed to refuses it, and the report says so
          }
        }
        return described.get(sessionId);
      };
      // The new package a reshare certified, read once from a node that committed it (the handoff opens the certificate's digest with it).
      const resharedPackages = new Map<string, Promise<PublicKeyPackageJson | undefined>>();
      const resharedPackage = (sessionId: string, version: number) => {
        if (!resharedPackages.has(sessionId)) {
          const from = known.findIndex((st) => st?.versions.some((v) => v.version === version && v.certSessionId === sessionId));
          const alt = known.findIndex((st) => st?.versions.some((v) => v.version === version) && st.certificates.some((c) => c.sessionId === sessionId));
          const k = from >= 0 ? from : alt;
          resharedPackages.set(sessionId, k < 0 ? Promise.resolve(undefined) : this.node(idx(k)).getKey(keyId, version).then((i) => i.publicPackage, () => undefined));
        }
        return resharedPackages.get(sessionId)!;
      };
      for (let k = 0; k < this.size; k++) {
        const st = known[k];
        // Unreachable, or holds nothing of the key (outside its committees, or it left them): nothing to apply.
        if (!st) continue;
        const have = new Set(st.certificates.map((c) => c.sessionId));
        const held = new Map(st.versions.map((v) => [v.version, v] as const));
        const route = (sessionId: string, certificate: string): 'commit' | 'handoff' | 'skip' => {
          if (st.staged?.sessionId === sessionId) return 'commit';
          const d = describe(sessionId, certificate);
          if (!d) return 'commit';
          const now = committees.get(d.version);
          const mine = held.get(d.version);
          const outside = now?.nodes !== undefined && !now.nodes.includes(idx(k));
          if (d.operation === 'reshare') {
            // An old holder left out of the new committee, still at an older epoch: the handoff erases it.
            if (outside && mine && mine.epoch < now!.epoch) return 'handoff';
            // A holder at the current epoch (it took part, or joined later), or not a holder at all.
            if (outside || (mine && now && mine.epoch >= now.epoch)) return 'skip';
            return 'commit';
          }
          // Outside the version's committee: it holds nothing to change (a reshare's handoff erases what it holds).
          if (outside) return 'skip';
          // A holder at the current epoch lacks only history from before it joined the committee.
          if (!(d.operation in TRANSITION_TARGETS) && mine && now && mine.epoch >= now.epoch) return 'skip';
          return 'commit';
        };
        let missing = [...certs]
          .filter(([sessionId, certificate]) => !have.has(sessionId) && route(sessionId, certificate) !== 'skip')
          .sort(([a], [b]) => Number(current.has(a)) - Number(current.has(b)));
        const failed = handFailures[k]!;
        for (let progress = true; progress && missing.length > 0; ) {
          progress = false;
          const left: typeof missing = [];
          for (const [sessionId, certificate] of missing) {
            try {
              if (route(sessionId, certificate) === 'handoff') {
                const version = describe(sessionId, certificate)!.version;
                const publicPackage = await resharedPackage(sessionId, version);
                if (!publicPackage) throw new TesseraClientError('NOT_FOUND', `no node that committed reshare ${sessionId} answered with its new package`);
                const res = await this.node(idx(k)).reshareHandoff(keyId, { certificate, publicPackage });
                reports[k]!.applied.push({ sessionId, operation: 'reshare', version: res.version, outcome: res.outcome });
              } else {
                const res = await this.node(idx(k)).repair(keyId, certificate);
                reports[k]!.applied.push({ sessionId, operation: res.operation, version: res.version, outcome: res.outcome });
              }
              failed.delete(sessionId);
              progress = true;
            } catch (e) {
              failed.set(sessionId, (e as Error).message);
              left.push([sessionId, certificate]);
            }
          }
          missing = left;
        }
      }
    };
    await handOut(known);
    // A reshare just committed (its certificate assembled in step 2, or handed to its players) moves the
    // version's committee: read again which old holders it left out, and hand them the certificate.
    if (reports.some((r) => r.applied.some((a) => a.operation === 'reshare' && a.outcome === 'committed'))) {
      const again = await Promise.allSettled(this.nodes.map((n) => n.commitStatus(keyId)));
      await handOut(again.map((r) => (r.status === 'fulfilled' ? r.value : undefined)));
    }
    handFailures.forEach((failed, k) => {
      for (const [sessionId, message] of failed) reports[k]!.problems.push(`session ${sessionId}: ${message}`);
    });

    // 3. A change some voter never staged (and no certificate exists): drop it where unreleased. Not while
    //    a voter cannot be asked (it may have staged it: then the change can still be finished).
    const unreachableNodes = new Set(unreachable.map(idx));
    for (let k = 0; k < this.size; k++) {
      const s = staged[k];
      if (!s || certs.has(s.sessionId)) continue;
      const voters = votersOf(s);
      if (voters.some((v) => unreachableNodes.has(v))) continue;
      if (voters.some((v) => staged[at(v)]?.sessionId !== s.sessionId)) {
        try {
          const r = await this.node(idx(k)).dropStaged(keyId, s.sessionId);
          if (r.dropped) reports[k]!.dropped.push(s.sessionId);
        } catch (e) {
          reports[k]!.problems.push(`session ${s.sessionId}: cannot drop: ${(e as Error).message}`);
        }
      }
    }

    const after = await Promise.allSettled(this.nodes.map((n) => n.commitStatus(keyId)));
    const afterKnown = after.map((r) => (r.status === 'fulfilled' ? r.value : r.reason?.code === 'NOT_FOUND' ? null : undefined));
    const nodes: RepairReport['nodes'] = reports.map((r, k) => {
      const st = afterKnown[k] ?? undefined;
      const waiting = st?.staged;
      const restored = afterKnown[k] === undefined ? undefined : restoredFinding(keyId, idx(k), k, afterKnown);
      // The certificates a restored node cannot apply are said once, in its finding.
      const problems = restored ? r.problems.filter((p) => !restored.needsReDeal.some((c) => p.startsWith(`session ${c.sessionId}:`))) : r.problems;
      return {
        node: r.node,
        applied: r.applied,
        dropped: r.dropped,
        problems,
        ...(waiting ? { waiting: { sessionId: waiting.sessionId, operation: waiting.operation, version: waiting.version, released: waiting.released } } : {}),
        ...(restored ? { restored: true as const, finding: restored.finding, needsReDeal: restored.needsReDeal } : {}),
      };
    });
    return { keyId, certificates: [...certs.keys()].map((sessionId) => ({ sessionId })), nodes };
  }

  /**
   * A key version's record (default the newest active) from node `node`, else from the first live node
   * that holds it: after a reshare a node outside the key's committee holds no record (NOT_FOUND), and
   * the next live node is asked.
   */
  async getKey(keyId: string, version?: number, node?: number): Promise<KeyInfo> {
    if (node !== undefined) return this.node(node).getKey(keyId, version);
    let notFound: unknown;
    for (const i of await this.liveNodes(1, `to look key ${keyId} up`)) {
      try {
        return await this.node(i).getKey(keyId, version);
      } catch (e) {
        if (!(e instanceof TesseraClientError && e.code === 'NOT_FOUND')) throw e;
        notFound ??= e;
      }
    }
    throw notFound;
  }

  async publicKey(keyId: string, version?: number): Promise<string> {
    return (await this.getKey(keyId, version)).publicKey;
  }

  /**
   * The child key of a non-hardened BIP-32 path (core/derive.ts), computed here from the key's public
   * record (its group key and chain code): the key `sign` with the same `path` signs under.
   */
  async childKey(keyId: string, o: { path: string; version?: number }): Promise<ChildKeyInfo> {
    const path = derivationPathOption(o.path) ?? 'm';
    const info = await this.getKey(keyId, o.version);
    return childKeyOf(info, packageFromJson(info.publicPackage), path);
  }

  /** The key record this SDK holds for (keyId, version): looked up once, then cached until a change or a mismatch. */
  private async keyInfo(keyId: string, version: number | undefined, node?: number): Promise<{ info: KeyInfo; pkg: PublicKeyPackage }> {
    const slot = JSON.stringify([keyId, version ?? 0]);
    const cached = this.keys.get(slot);
    if (cached) return cached;
    // Concurrent first calls share one lookup.
    let load = this.keyLoads.get(slot);
    if (!load) {
      // `node` first; if it holds no record (outside the key's committee), the live nodes that do.
      const lookup = this.getKey(keyId, version, node).catch((e) => {
        if (node === undefined || !(e instanceof TesseraClientError && e.code === 'NOT_FOUND')) throw e;
        return this.getKey(keyId, version);
      });
      const mine: Promise<{ info: KeyInfo; pkg: PublicKeyPackage }> = lookup
        .then((info) => {
          const entry = { info, pkg: packageFromJson(info.publicPackage) };
          // Not if the record was forgotten meanwhile (it may be stale): the next call looks it up again.
          if (this.keyLoads.get(slot) === mine) {
            this.keys.set(slot, entry);
            this.keys.set(JSON.stringify([keyId, info.version]), entry);
            this.presigner.cache.dropStale(keyId, info.version, info.epoch);
          }
          return entry;
        })
        .finally(() => {
          if (this.keyLoads.get(slot) === mine) this.keyLoads.delete(slot);
        });
      this.keyLoads.set(slot, (load = mine));
    }
    return load;
  }

  private forgetKeyInfo(keyId: string): void {
    for (const k of [...this.keys.keys()]) if (JSON.parse(k)[0] === keyId) this.keys.delete(k);
    for (const k of [...this.keyLoads.keys()]) if (JSON.parse(k)[0] === keyId) this.keyLoads.delete(k);
  }

  /** Forget what this SDK holds for a key (its record and cached presignatures): after a change to it. */
  private forgetKey(keyId: string): void {
    this.forgetKeyInfo(keyId);
    this.presigner.cache.dropKey(keyId);
    this.ecdsaPresignatures.dropKey(keyId);
  }

  private presignOn(asked: boolean | undefined): boolean {
    return this.presigner.enabled && asked !== false;
  }

  /**
   * Fetch presignature commitments now, so that the next `count` signatures with this key version by
   * `players` (default the first t live nodes) take one round trip. Each batch is verified under its node's identity key.
   * From then on the key's cache refills in the background when it runs low (PresignOptions.lowWater).
   * Returns how many signatures the cache now holds commitments for (fewer if a node gave fewer).
   */
  async warmPresignatures(keyId: string, count: number, o: { players?: number[]; version?: number } = {}): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 1) throw new TesseraClientError('BAD_INPUT', 'count: expected a positive integer');
    const { info, players } = await this.keyAndPlayers(keyId, o.version, o.players);
    if (isEcdsaKey(info)) return this.warmEcdsaPresignatures(keyId, info, players, count);
    await this.presigner.ensure(keyId, info.version, info.epoch, players, count);
    return Math.min(...players.map((p) => this.presigner.cache.size(p, keyId, info.version, info.epoch)));
  }

  /**
   * Threshold ECDSA: make presignatures among `players` until the cache holds `count` for this signer
   * set, in sessions of at most MAX_ECDSA_PRESIGN_BATCH each (every player's node is asked; the answers
   * must list the same ids and R). Returns how many the cache holds for this signer set.
   */
  private async warmEcdsaPresignatures(keyId: string, info: KeyInfo, players: readonly number[], count: number): Promise<number> {
    const sorted = [...players].sort((a, b) => a - b);
    let version = info.version;
    let epoch = info.epoch;
    // As for FROST: enough for `count` signatures; only what the cache lacks is made.
    for (let left = count - this.ecdsaPresignatures.size(keyId, version, epoch, sorted); left > 0; left -= MAX_ECDSA_PRESIGN_BATCH) {
      const n = Math.min(left, MAX_ECDSA_PRESIGN_BATCH);
      const req: EcdsaPresignaturesRequest = { sessionId: newSessionId(), players: sorted, count: n, version: info.version };
      const settled = await Promise.allSettled(sorted.map((i) => this.node(i).ecdsaPresignatures(keyId, req)));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        this.presignStats.fetchErrors++;
        throw failed.reason;
      }
      const answers = settled.map((r) => (r as PromiseFulfilledResult<EcdsaPresignaturesResponse>).value);
      const checked = checkEcdsaPresignAnswers(answers, { keyId, players: sorted, count: n });
      // The nodes' epoch is authoritative: a record of another epoch here is stale (refreshed elsewhere).
      if (checked.epoch !== info.epoch || checked.version !== info.version) this.forgetKeyInfo(keyId);
      ({ version, epoch } = checked);
      this.ecdsaPresignatures.add(keyId, version, epoch, sorted, checked.presignatures);
      this.presignStats.batches++;
      this.presignStats.commitments += n;
    }
    return this.ecdsaPresignatures.size(keyId, version, epoch, sorted);
  }

  /** Cached threshold ECDSA presignatures of a key version for a signer set (its current epoch as this SDK knows it). */
  ecdsaPresignaturesCached(keyId: string, players: readonly number[], version?: number): number {
    const known = this.keys.get(JSON.stringify([keyId, version ?? 0]))?.info;
    return known ? this.ecdsaPresignatures.size(keyId, known.version, known.epoch, players) : 0;
  }

  /**
   * A presigned ECDSA attempt failed: a policy refusal is the answer and is thrown; otherwise the signer
   * set's cached presignatures are forgotten when a node no longer holds one (restart, key change), the
   * key record is looked up again, and the caller falls back to the two-round session.
   */
  private ecdsaPresignedFailed(keyId: string, version: number, epoch: number, players: readonly number[], failures: readonly (readonly [number, unknown])[]): void {
    const denied = failures.find(([, e]) => e instanceof TesseraClientError && (e.code === 'POLICY_DENIED' || e.code === 'UNAUTHORIZED'));
    if (denied) throw denied[1];
    if (failures.some(([, e]) => e instanceof TesseraClientError && e.code === 'PRESIGNATURE_UNAVAILABLE')) this.ecdsaPresignatures.dropScope(keyId, version, epoch, players);
    this.forgetKeyInfo(keyId);
    this.presignStats.fallbacks++;
  }

  /** Cached presignatures of node `node` for a key version (its current epoch as this SDK knows it). */
  presignaturesCached(keyId: string, node: number, version?: number): number {
    const known = this.keys.get(JSON.stringify([keyId, version ?? 0]))?.info;
    return known ? this.presigner.cache.size(node, keyId, known.version, known.epoch) : 0;
  }

  /** Wait until no background presignature refill is in flight (before closing the nodes, in tests). */
  presignIdle(): Promise<void> {
    return this.presigner.idle();
  }

  /**
   * A presigned attempt failed at some players: a policy refusal (the node's operator said no) is the
   * answer and is thrown; anything else is forgotten and the caller falls back to the two-round path
   * (no error), which gives the authoritative answer. The key record is looked up again (the failure
   * may be a stale version or epoch: "refresh and retry once"), and a pool a node no longer knows is
   * dropped from the cache.
   */
  private presignedFailed(keyId: string, failures: readonly (readonly [number, unknown])[], lists: readonly PresignedCommitmentJson[][]): void {
    const denied = failures.find(([, e]) => e instanceof TesseraClientError && (e.code === 'POLICY_DENIED' || e.code === 'UNAUTHORIZED'));
    if (denied) throw denied[1];
    for (const [node, e] of failures) {
      if (e instanceof TesseraClientError && e.code === 'PRESIGNATURE_UNAVAILABLE') {
        for (const poolId of new Set(lists.flatMap((l) => l.filter((c) => c.node === node).map((c) => c.poolId)))) this.presigner.cache.dropPool(node, poolId);
      }
    }
    this.forgetKeyInfo(keyId);
    this.presignStats.fallbacks++;
  }

  /** The two-round session path for one approved request: sign, check the nodes agree, verify. */
  private async signTwoRound(request: Extract<SessionRequest, { operation: 'sign' }>, players: readonly number[]): Promise<SignResult> {
    const { commitments: _, ...plain } = request;
    let results: SignResponse[];
    try {
      results = await this.run<SignResponse>(players, plain, undefined, true);
    } catch (e) {
      this.forgetKeyInfo(request.keyId);
      throw e;
    }
    assertSame(results.map((r) => r.signature), 'signature');
    const r = results[0]!;
    // The nodes may have signed with a newer version than this SDK's record (rotated elsewhere).
    let found = await this.keyInfo(request.keyId, request.version, players[0]!);
    if (found.info.version !== r.version) {
      this.forgetKeyInfo(request.keyId);
      found = await this.keyInfo(request.keyId, r.version, players[0]!);
    }
    const key = found.info;
    const suite = derivableSuite(key.suite);
    // With a path, the signature is under the child key, derived here from the public record.
    const publicKey = request.path === undefined ? key.publicKey : childKeyOf(key, found.pkg, request.path).publicKey;
    const [signature, message, pk] = [fromHex(r.signature, 'signature'), fromHex(request.message, 'message'), fromHex(publicKey, 'publicKey')];
    const valid = suite.kind === 'ecdsa' ? suite.verify(signature, message, pk, { prehashed: request.prehashed === true }) : suite.verify(signature, message, pk);
    if (!valid) throw new TesseraClientError('VERIFICATION_FAILED', 'the aggregated signature does not verify');
    this.presignStats.twoRound++;
    return { ...r, path: 'two-round', ...(request.path !== undefined ? { derivationPath: request.path } : {}) };
  }

  /**
   * Sign `message` (bytes, or hex with optional 0x) with `players` (default the first t live nodes; if one
   * of those does not answer, the call is run once more with live ones). Every player's operator hook approves it first.
   * With presignatures cached for every player (warmPresignatures once per key; the cache then refills
   * in the background, see PresignOptions), this is one round trip per player and no key lookup: each player gets the
   * message and the commitment list, returns its share, and the SDK aggregates and verifies. Otherwise,
   * or if a player refuses its commitment (unknown, used, stale), the two-round session path signs,
   * with no error. `path` says which one did.
   */
  async sign(o: SignOptions): Promise<SignResult> {
    const message = typeof o.message === 'string' ? normalizeHex(o.message, 'message') : toHex(o.message);
    return this.withLivePlayers(o.players, () => this.signWith(o, message));
  }

  private async signWith(o: SignOptions, message: string): Promise<SignResult> {
    const path = derivationPathOption(o.path);
    const { info: key, pkg: parentPkg, players } = await this.keyAndPlayers(o.keyId, o.version, o.players);
    // With a path, the shares combine under the child's package (core/derive.ts), derived here from the public record.
    const pkg = path === undefined ? parentPkg : childPackageOf(key, parentPkg, path);
    const ecdsa = isEcdsaKey(key, o.prehashed);
    // Presignatures are FROST's (core/presign.ts): a threshold ECDSA key signs in its session.
    const list = !ecdsa && this.presignOn(o.presigned) ? this.presigner.cache.take(o.keyId, key.version, key.epoch, players, 1)[0] : undefined;
    const request: Extract<SessionRequest, { operation: 'sign' }> = {
      operation: 'sign',
      sessionId: newSessionId(),
      keyId: o.keyId,
      message,
      players,
      ...(o.version ? { version: o.version } : {}),
      ...(list ? { commitments: list } : {}),
      ...(path !== undefined ? { path } : {}),
      ...(o.prehashed !== undefined ? { prehashed: o.prehashed } : {}),
    };
    // Every operator approves every signature, before any node is asked.
    await Promise.all(players.map((i) => this.node(i).authorize(request)));
    // Threshold ECDSA: a cached DKLs23 presignature of exactly these players (not for child keys), taken
    // once every operator approved (a refusal leaves it cached: no node was asked).
    const ecdsaPresig: EcdsaPresignatureJson | undefined =
      ecdsa && path === undefined && this.presignOn(o.presigned) ? this.ecdsaPresignatures.take(o.keyId, key.version, key.epoch, players) : undefined;
    try {
      if (ecdsaPresig) {
        const req: EcdsaSignShareRequest = {
          presignatureId: ecdsaPresig.id,
          message,
          ...(o.prehashed !== undefined ? { prehashed: o.prehashed } : {}),
          version: key.version,
          epoch: key.epoch,
          players: [...players].sort((a, b) => a - b),
        };
        const settled = await Promise.allSettled(players.map((i) => this.node(i).ecdsaSignShare(o.keyId, req, { approved: true })));
        const failures = settled.flatMap((r, k) => (r.status === 'rejected' ? [[players[k]!, r.reason] as const] : []));
        if (failures.length === 0) {
          try {
            const answers = settled.map((r) => (r as PromiseFulfilledResult<EcdsaSignShareResponse>).value);
            const sig = combineEcdsaPresigned({ suite: key.suite, publicKey: key.publicKey, presignature: ecdsaPresig, message, prehashed: o.prehashed === true, players, answers });
            this.presignStats.presigned++;
            return { keyId: o.keyId, version: key.version, ...sig, path: 'presigned' };
          } catch (e) {
            // Shares that do not combine are no evidence against anyone (not signed): the two-round session signs.
            this.ecdsaPresignedFailed(o.keyId, key.version, key.epoch, players, [[0, e]]);
          }
        } else this.ecdsaPresignedFailed(o.keyId, key.version, key.epoch, players, failures);
      }
      if (list) {
        const req: SignShareRequest = { message, commitments: list, version: key.version, epoch: key.epoch, ...(path !== undefined ? { path } : {}) };
        const asked = Promise.allSettled(players.map((i) => this.node(i).signShare(o.keyId, req, { approved: true })));
        // While the players compute: everything of the aggregation that needs no share (sent first).
        const prepared = await whileAsked(() => prepareSignatureShares({ suite: key.suite, publicPackage: pkg, message, commitments: list }));
        const settled = await asked;
        const failures = settled.flatMap((r, k) => (r.status === 'rejected' ? [[players[k]!, r.reason] as const] : []));
        if (failures.length === 0) {
          const shares = settled.map((r) => (r as PromiseFulfilledResult<SignShareResponse>).value);
          try {
            const signature = combinePreparedShares(prepared, shares);
            this.presignStats.presigned++;
            return { keyId: o.keyId, version: key.version, signature, path: 'presigned', ...(path !== undefined ? { derivationPath: path } : {}) };
          } catch (e) {
            // A share that does not verify is no evidence against its node (not identity-signed): the
            // two-round session, whose messages are signed, names a cheating node on evidence.
            this.presignedFailed(o.keyId, [[0, e]], [list]);
          }
        } else this.presignedFailed(o.keyId, failures, [list]);
      }
      return await this.signTwoRound(request, players);
    } finally {
      this.refill(o.keyId, o.version, players);
    }
  }

  /** Start a background refill for the players of a key version, if its record is at hand. */
  private refill(keyId: string, version: number | undefined, players: readonly number[]): void {
    const known = this.keys.get(JSON.stringify([keyId, version ?? 0]))?.info;
    if (known && this.presigner.enabled) this.presigner.refillIfLow(keyId, known.version, known.epoch, players);
  }

  /**
   * Sign many messages with one key: result k is the signature over messages[k]. Every operator's hook
   * approves every message first. The commitments they need are fetched (one request per player, if
   * the cache lacks them), then each player gets one sign-batch request per MAX_SIGN_BATCH messages
   * and the SDK aggregates and verifies each signature. Messages left without commitments, or whose
   * batch a player refused, sign by the two-round path (no error).
   */
  async signMany(o: { keyId: string; messages: readonly (Uint8Array | string)[]; players?: number[]; version?: number; presigned?: boolean }): Promise<SignResult[]> {
    const messages = o.messages.map((m, k) => (typeof m === 'string' ? normalizeHex(m, `messages[${k}]`) : toHex(m)));
    if (messages.length === 0) return [];
    const { info: key, pkg, players } = await this.keyAndPlayers(o.keyId, o.version, o.players);
    let lists: PresignedCommitmentJson[][] = [];
    // Presignatures are FROST's: a threshold ECDSA key signs each message in its own session.
    if (!isEcdsaKey(key) && this.presignOn(o.presigned)) {
      await this.presigner.ensure(o.keyId, key.version, key.epoch, players, messages.length);
      lists = this.presigner.cache.take(o.keyId, key.version, key.epoch, players, messages.length);
    }
    const requests = messages.map(
      (message, k): Extract<SessionRequest, { operation: 'sign' }> => ({
        operation: 'sign',
        sessionId: newSessionId(),
        keyId: o.keyId,
        message,
        players,
        ...(o.version ? { version: o.version } : {}),
        ...(lists[k] ? { commitments: lists[k] } : {}),
      }),
    );
    await Promise.all(players.flatMap((i) => requests.map((r) => this.node(i).authorize(r))));
    const out: (SignResult | undefined)[] = messages.map(() => undefined);
    try {
      const chunks: number[][] = [];
      for (let s = 0; s < lists.length; s += MAX_SIGN_BATCH) chunks.push(Array.from({ length: Math.min(MAX_SIGN_BATCH, lists.length - s) }, (_, k) => s + k));
      let denied: unknown;
      await Promise.all(
        chunks.map(async (ks) => {
          const req: SignBatchRequest = { keyId: o.keyId, version: key.version, epoch: key.epoch, items: ks.map((k) => ({ message: messages[k]!, commitments: lists[k]! })) };
          const asked = Promise.allSettled(players.map((i) => this.node(i).signBatch(req, { approved: true })));
          // While the players compute: the aggregation of every item up to the shares (sent first).
          const prepared = await whileAsked(() => ks.map((k) => prepareSignatureShares({ suite: key.suite, publicPackage: pkg, message: messages[k]!, commitments: lists[k]! })));
          const settled = await asked;
          const failures = settled.flatMap((r, k) => (r.status === 'rejected' ? [[players[k]!, r.reason] as const] : []));
          if (failures.length > 0) {
            try {
              this.presignedFailed(o.keyId, failures, ks.map((k) => lists[k]!));
            } catch (e) {
              denied ??= e;
            }
            return;
          }
          const answers = settled.map((r) => (r as PromiseFulfilledResult<SignBatchResponse>).value);
          ks.forEach((k, j) => {
            try {
              const shares = answers.map((a) => ({ node: a.node, share: a.shares[j]!, commitment: a.commitments[j]! }));
              const signature = combinePreparedShares(prepared[j]!, shares);
              out[k] = { keyId: o.keyId, version: key.version, signature, path: 'presigned' };
              this.presignStats.presigned++;
            } catch (e) {
              this.presignedFailed(o.keyId, [[0, e]], [lists[k]!]);
            }
          });
        }),
      );
      if (denied !== undefined) throw denied;
      // The rest by the two-round path, a few sessions at a time.
      const rest = out.flatMap((r, k) => (r === undefined ? [k] : []));
      const workers = Array.from({ length: Math.min(4, rest.length) }, async () => {
        for (let k = rest.shift(); k !== undefined; k = rest.shift()) out[k] = await this.signTwoRound(requests[k]!, players);
      });
      await Promise.all(workers);
      return out as SignResult[];
    } finally {
      this.refill(o.keyId, o.version, players);
    }
  }

  /**
   * Threshold decapsulation in one round trip (issue 10 item 4). Every player's operator hook approves
   * the request first; then the players (default the first t live nodes) are asked in parallel, and each answers directly
   * with its DLEQ-proved partial, HPKE-wrapped (ML-KEM-768) to a fresh receiver key only this call holds:
   * no coordinator session, no relay. The partials are unwrapped with that key, bound (associated data)
   * to this call's session id, the key version and each sender's index, and combined by decapCombine,
   * which checks every proof and names every node whose partial fails (BAD_PROOF, culprits). The key
   * record comes from this SDK's cache (looked up once). If the players hold different epochs of the
   * version (one missed a refresh commit), the nodes behind are handed the certificate of the newest
   * epoch (as `repair` does) and asked once more.
   */
  async decapsulate(o: { keyId: string; enc: Uint8Array | string; players?: number[]; version?: number }): Promise<{ sharedSecret: string; version: number }> {
    const { secret, version } = await this.decapsulateSecret(o);
    try {
      return { sharedSecret: toHex(secret), version };
    } finally {
      zeroize(secret);
    }
  }

  /** decapsulate with the secret as bytes (the caller wipes it) and the key's suite. */
  private async decapsulateSecret(o: { keyId: string; enc: Uint8Array | string; players?: number[]; version?: number }): Promise<{ secret: Uint8Array; version: number; suite: string }> {
    const enc = typeof o.enc === 'string' ? normalizeHex(o.enc, 'enc') : toHex(o.enc);
    return this.withLivePlayers(o.players, () => this.decapsulateWith(o, enc));
  }

  private async decapsulateWith(o: { keyId: string; players?: number[]; version?: number }, enc: string): Promise<{ secret: Uint8Array; version: number; suite: string }> {
    const { info, players } = await this.keyAndPlayers(o.keyId, o.version, o.players);
    const suite = getKemSuite(info.suite);
    try {
      let outcome = await this.decapsulateOnce(o.keyId, o.version, suite.id, enc, players);
      if ('behind' in outcome) {
        await this.catchUpEpoch(o.keyId, outcome.version, outcome.ahead, outcome.behind);
        outcome = await this.decapsulateOnce(o.keyId, o.version, suite.id, enc, players);
        if ('behind' in outcome) {
          throw new TesseraClientError('EPOCH_MISMATCH', `nodes ${outcome.behind.join(',')} still hold an older epoch of ${o.keyId} version ${outcome.version} than node ${outcome.ahead}; run \`tessera repair --key-id ${o.keyId}\``);
        }
      }
      // The nodes used another version than this SDK's record names (rotated elsewhere): look it up again next time.
      if (outcome.version !== info.version) this.forgetKeyInfo(o.keyId);
      return { secret: outcome.secret, version: outcome.version, suite: suite.id };
    } catch (e) {
      this.forgetKeyInfo(o.keyId);
      throw e;
    }
  }

  /**
   * One decapsulation round trip: every player asked in parallel with the same request, each answer
   * unwrapped and checked, then combined. Returns `behind` instead when the players agree on the version
   * but hold different epochs of it.
   */
  private async decapsulateOnce(
    keyId: string,
    version: number | undefined,
    suiteId: string,
    enc: string,
    players: readonly number[],
  ): Promise<{ secret: Uint8Array; version: number } | { version: number; ahead: number; behind: number[] }> {
    const suite = getKemSuite(suiteId);
    // A receiver key for this call only (liboqs key generation, the expanded key kept; core/wrap.ts).
    const receiver = await generateOneCallReceiver();
    const opened: Uint8Array[] = [];
    try {
      const sessionId = newSessionId();
      const request: SessionRequest = {
        operation: 'decapsulate',
        sessionId,
        keyId,
        enc,
        players: [...players],
        receiverPublicKey: toHex(receiver.publicKey),
        ...(version ? { version } : {}),
      };
      const results = await this.run<DecapsulateResponse>(players, request);
      results.forEach((r, k) => {
        // Each answer must come from the node asked, for this key: its index is bound into the unwrapping below.
        if (r.index !== players[k] || r.keyId !== keyId) {
          throw new TesseraClientError('VERIFICATION_FAILED', `node ${players[k]} answered for node ${r.index} / key ${r.keyId}`, { node: players[k]! });
        }
      });
      assertSame(results.map((r) => String(r.version)), 'key version');
      const epochs = results.map((r) => r.publicPackage.epoch);
      const newest = Math.max(...epochs);
      if (epochs.some((e) => e !== newest)) {
        return { version: results[0]!.version, ahead: players[epochs.indexOf(newest)]!, behind: players.filter((_, k) => epochs[k] !== newest) };
      }
      assertSame(results.map((r) => JSON.stringify(r.publicPackage)), 'public package');
      const pkg = packageFromJson(results[0]!.publicPackage);
      if (pkg.suite !== suite.id) throw new TesseraClientError('VERIFICATION_FAILED', `the nodes answered with a ${pkg.suite} key, not ${suite.id}`);
      const session = fromHex(sessionId, 'sessionId');
      const partials = new Map<number, ReturnType<typeof decodeMessage<'decap/partial'>>>();
      // One deserialization (and ML-KEM seed expansion) of this call's receiver key opens all t partials.
      opened.push(
        ...(await openAllFromSenderOneCall(
          receiver,
          results.map((r) => ({
            sealed: { kem: r.wrappedPartial.kem, enc: fromHex(r.wrappedPartial.enc, 'enc'), ciphertext: fromHex(r.wrappedPartial.ciphertext, 'ciphertext') },
            aad: decapPartialBinding(session, keyId, r.version, r.index),
          })),
        )),
      );
      results.forEach((r, k) => partials.set(r.index, decodeMessage(opened[k]!, 'decap/partial', suite.id)));
      // Checks every DLEQ proof (bound to this session id and the sender's index) before combining.
      const secret = decapCombine(suite, pkg, fromHex(enc, 'enc'), partials, session);
      return { secret, version: results[0]!.version };
    } finally {
      wipeOneCallReceiver(receiver);
      for (const p of opened) p.fill(0); // t of these give the DH value
    }
  }

  /** Hand the certificate of node `ahead`'s current epoch of a version to the nodes behind (step 1 of repair, for one version). */
  private async catchUpEpoch(keyId: string, version: number, ahead: number, behind: readonly number[]): Promise<void> {
    const status = await this.node(ahead).commitStatus(keyId);
    const certSessionId = status.versions.find((v) => v.version === version)?.certSessionId;
    const certificate = certSessionId && status.certificates.find((c) => c.sessionId === certSessionId)?.certificate;
    if (!certificate) {
      throw new TesseraClientError('EPOCH_MISMATCH', `nodes ${behind.join(',')} hold an older epoch of ${keyId} version ${version} than node ${ahead}, which has no certificate for its epoch; run \`tessera repair --key-id ${keyId}\``);
    }
    await Promise.all(behind.map((n) => this.node(n).repair(keyId, certificate)));
  }

  /** Each node's import public key (ML-KEM-768): what a bundle for this cluster is wrapped to. */
  async importKeys(): Promise<{ index: number; kem: 'ml-kem-768'; publicKey: string }[]> {
    const infos = await Promise.all(this.nodes.map((n) => n.info()));
    return infos.map((info) => ({ index: info.index, kem: 'ml-kem-768' as const, publicKey: info.importPublicKey })).sort((a, b) => a.index - b.index);
  }

  /**
   * This cluster as an export destination (`tessera import-key --json`): its threshold t (the
   * cluster's default for new keys), its node count n and every node's import key. A source cluster of
   * another size deals the key for this t and n (exportKey's `destination`).
   */
  async importKeysFile(): Promise<ImportKeysFileJson & { threshold: number; parties: number }> {
    const threshold = this.defaults.threshold ?? Math.floor(this.size / 2) + 1;
    return { threshold, parties: this.size, importKeys: await this.importKeys() };
  }

  /**
   * Export a key as a bundle (core/bundle.ts): every node re-randomises its share (the cluster keeps
   * its own) and wraps the new one to `wrappingKeys` (one for all shares, or one per share). Every
   * operator's hook sees the wrapping keys. The bundle is checked (public part, public key) before it
   * is returned.
   *
   * `destination` (an import-keys file's threshold and node count) of another size than the key's t
   * and n, or a key whose committee is not 1..n: every node deals its re-randomised share to the
   * destination's nodes 1..n' with threshold t' (core/reshare.ts) and seals sub-share j to
   * `wrappingKeys[j - 1]`, and the result is a version 2 bundle that imports on the destination (cross-size
   * failover). Every operator's hook sees the destination's size too.
   */
  exportKey(o: ExportKeyOptions & { destination: { threshold: number; parties: number } }): Promise<AnyBundleJson>;
  exportKey(o: ExportKeyOptions): Promise<KeyBundleJson>;
  async exportKey(o: ExportKeyOptions & { destination?: { threshold: number; parties: number } }): Promise<AnyBundleJson> {
    const key = await this.getKey(o.keyId, o.version);
    const given = o.wrappingKeys.map((k, i) => bytesOrHex(k, `wrappingKeys[${i}]`));
    const dest = o.destination;
    if (dest !== undefined) {
      const size = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
      if (typeof dest !== 'object' || dest === null || !size(dest.parties, 2, 255) || !size(dest.threshold, 2, dest.parties)) {
        throw new TesseraClientError('BAD_PARAMETERS', 'destination: expected { threshold, parties } with 2 <= threshold <= parties <= 255');
      }
    }
    // Deal for the destination when its size differs, or when the key's committee is not 1..n (a
    // version 1 bundle carries shares at indices 1..n only).
    const sameSize = dest === undefined || (dest.threshold === key.threshold && dest.parties === key.parties && key.publicPackage.indices === undefined);
    const reshare = sameSize ? undefined : { threshold: dest!.threshold, parties: dest!.parties };
    const perShare = wrappingKeysForParties(given, reshare?.parties ?? key.parties);
    const request: SessionRequest = {
      operation: 'export',
      sessionId: newSessionId(),
      keyId: o.keyId,
      wrappingKeys: given.map(toHex),
      wrappingKeyFingerprints: given.map((k) => toHex(wrappingKeyFingerprint(k))),
      ...(o.version ? { version: o.version } : {}),
      ...(reshare ? { reshare } : {}),
    };
    // The key's holders run the export session: its committee, or 1..n.
    const holders = key.publicPackage.indices ?? allPlayers(key.parties);
    const results = await this.run<ExportResponse>(holders, request);
    assertSame(results.map((r) => JSON.stringify(r.publicPackage)), 'public package');
    const fingerprint = (j: number): string => toHex(wrappingKeyFingerprint(perShare[j - 1]!));
    let bundle: AnyBundleJson;
    if (reshare) {
      for (const r of results) {
        // Each node must have dealt to every destination node, each sub-share sealed to that node's key.
        const ok = r.dealt !== undefined && r.dealt.wrappedShares.length === reshare.parties && r.dealt.wrappedShares.every((w, k) => w.index === k + 1 && w.wrappingKeyFingerprint === fingerprint(k + 1));
        if (!ok) throw new TesseraClientError('VERIFICATION_FAILED', `node ${r.index} did not deal one sub-share to each destination node's key`, { node: r.index });
      }
      try {
        bundle = assembleResharedBundle({
          keyId: o.keyId,
          keyVersion: results[0]!.version,
          source: packageFromJson(results[0]!.publicPackage),
          threshold: reshare.threshold,
          dealers: results.map((r) => ({ index: r.index, commitments: r.dealt!.commitments, wrappedShares: r.dealt!.wrappedShares })),
        });
      } catch (e) {
        // A node whose commitments fail the checks (core/reshare.ts names it) spoils the bundle.
        if (isTesseraError(e)) throw new TesseraClientError('VERIFICATION_FAILED', `the exported bundle does not check: ${e.message}`, { culprits: e.culprits });
        throw e;
      }
    } else {
      for (const r of results) {
        // Each node must have wrapped its own share, to the key given for its index.
        if (r.wrappedShare === undefined || r.wrappedShare.index !== r.index || r.wrappedShare.wrappingKeyFingerprint !== fingerprint(r.index)) {
          throw new TesseraClientError('VERIFICATION_FAILED', `node ${r.index} wrapped its share to another key or index`, { node: r.index });
        }
      }
      bundle = assembleBundle({
        keyId: o.keyId,
        keyVersion: results[0]!.version,
        package: packageFromJson(results[0]!.publicPackage),
        wrappedShares: results.map((r) => r.wrappedShare!),
      });
    }
    if (bundle.publicKey !== key.publicKey) throw new TesseraClientError('VERIFICATION_FAILED', 'the exported bundle is for another public key');
    return bundle;
  }

  /**
   * Import a bundle (from another cluster's export, or splitAndWrap). The bundle is parsed and checked
   * here first; threshold and party count must equal this cluster's (default threshold: the cluster's):
   * a bundle from a cluster of another size is one exported with this cluster's import-keys file
   * (importKeysFile), which carries a sharing dealt for this size (version 2). Every operator's hook
   * sees the bundle and its digest. The key is stored under `keyId` (default the bundle's) with
   * `exportable` (default false), fixed from then on.
   */
  async importKey(o: { bundle: unknown; keyId?: string; exportable?: boolean; threshold?: number }): Promise<KeyInfo> {
    const bundle = parseBundle(o.bundle);
    const { threshold, parties } = bundle.package;
    const again = "; export the key again with this cluster's import-keys file (`tessera import-key --json`), which deals it for this cluster's size";
    if (parties !== this.size) {
      throw new TesseraClientError('BAD_PARAMETERS', `the bundle's key is shared among ${parties} parties but this cluster has ${this.size} nodes (the bundle carries a ${threshold}-of-${parties} sharing)${again}`);
    }
    const expected = o.threshold ?? this.defaults.threshold;
    if (expected !== undefined && expected !== threshold) {
      throw new TesseraClientError('BAD_PARAMETERS', `the bundle's threshold is ${threshold} but this cluster's is ${expected}${again}`);
    }
    const request: SessionRequest = {
      operation: 'import',
      sessionId: newSessionId(),
      keyId: o.keyId ?? bundle.keyId,
      bundle: bundleToJson(bundle),
      bundleDigest: toHex(bundleDigest(bundle)),
      exportable: o.exportable ?? false,
      threshold,
    };
    const results = await this.run<KeyInfo>([...this.indices], request, (node) => this.getKey(request.keyId!, undefined, node));
    assertSame(results.map((r) => r.publicKey), 'public key');
    if (results[0]!.publicKey !== toHex(bundle.publicKey)) throw new TesseraClientError('VERIFICATION_FAILED', 'the imported key has another public key than the bundle');
    return results[0]!;
  }

  /**
   * Rotate: every node makes a new version by DKG under the same key id and retires the version it
   * replaces (the newest active one unless named). Every operator's hook approves it first.
   */
  async rotate(o: { keyId: string; version?: number }): Promise<RotateResponse> {
    const request: SessionRequest = { operation: 'rotate', sessionId: newSessionId(), keyId: o.keyId, ...(o.version ? { version: o.version } : {}) };
    // The new version is dealt to the committee of the version it replaces.
    const results = await this.run<RotateResponse>(await this.holdersOf(o.keyId, o.version), request, async (node) => {
      const info = await this.getKey(o.keyId, undefined, node);
      return { keyId: o.keyId, version: info.version, previousVersion: info.version - 1, suite: info.suite, publicKey: info.publicKey };
    });
    this.forgetKey(o.keyId); // its presignatures are for the retired version
    assertSame(results.map((r) => `${r.version}/${r.previousVersion}/${r.publicKey}`), 'rotation result');
    return results[0]!;
  }

  /**
   * Emergency rotation (issue 15, item 3): rotate the newest active version of every key, of `tenant`
   * (acting for it: an admin API key) or of every tenant the API keys can list (else the keys' own),
   * each through rotate(), so every operator's hook approves every rotation as it approves one.
   * With `statePath` the run resumes after a crash without rotating a key twice (sdk/rotate-all.ts
   * says how); `onProgress` hears one line per key. The result lists what was rotated (from and to
   * version), skipped (no active version, or an older active one) and failed (with why).
   */
  async rotateAll(o: { tenant?: string; statePath?: string; onProgress?: (line: string) => void; concurrency?: number } = {}): Promise<RotateAllResult> {
    const tenants = new Map<string | null, RotateAllTenantOps>();
    if (o.tenant !== undefined) tenants.set(tenantName(o.tenant), this.forTenant(o.tenant));
    else {
      let names: string[] | null;
      try {
        names = await this.listTenants();
      } catch (e) {
        if (!(e instanceof TesseraClientError && e.code === 'POLICY_DENIED')) throw e;
        names = null; // a tenant API key: its own tenant's keys
      }
      if (names === null) tenants.set(null, this);
      else for (const t of names) tenants.set(t, this.forTenant(t));
    }
    return rotateEveryKey({
      tenant: o.tenant ?? null,
      tenants,
      ...(o.statePath !== undefined ? { statePath: o.statePath } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    });
  }

  /**
   * Move one version to `state` (core/lifecycle.ts: retire, archive, activate, destroy), a session of
   * every node that every operator's hook approves. Destroying erases every node's share for good; the
   * public key stays readable. Returns the version's record afterwards.
   */
  async setState(o: { keyId: string; version: number; state: KeyState }): Promise<KeyInfo> {
    const operation = TRANSITION_OPERATIONS[o.state];
    if (!operation) throw new TesseraClientError('BAD_INPUT', `unknown state ${String(o.state)}`);
    const request: SessionRequest = { operation, sessionId: newSessionId(), keyId: o.keyId, version: o.version, state: o.state };
    const results = await this.run<KeyInfo>(await this.holdersOf(o.keyId, o.version), request, (node) => this.getKey(o.keyId, o.version, node));
    this.forgetKey(o.keyId); // a state change invalidates the nodes' pools of the key
    assertSame(results.map((r) => `${r.version}/${r.state}/${r.publicKey}`), 'state change result');
    return results[0]!;
  }

  retire(keyId: string, version: number): Promise<KeyInfo> {
    return this.setState({ keyId, version, state: 'retired' });
  }
  archive(keyId: string, version: number): Promise<KeyInfo> {
    return this.setState({ keyId, version, state: 'archived' });
  }
  activate(keyId: string, version: number): Promise<KeyInfo> {
    return this.setState({ keyId, version, state: 'active' });
  }
  destroy(keyId: string, version: number): Promise<KeyInfo> {
    return this.setState({ keyId, version, state: 'destroyed' });
  }

  /**
   * Create tenant `name` on every node (each node answers only to its own operator's admin key).
   * A node where it already exists counts as done; ALREADY_EXISTS only if it existed on every node.
   */
  async createTenant(name: string): Promise<{ tenant: string; nodes: { node: number; created: boolean }[] }> {
    const settled = await Promise.allSettled(this.nodes.map((n) => n.createTenant(name)));
    const nodes = settled.map((r, k) => {
      if (r.status === 'fulfilled') return { node: this.indices[k]!, created: true };
      if ((r.reason as TesseraClientError).code === 'ALREADY_EXISTS') return { node: this.indices[k]!, created: false };
      throw r.reason;
    });
    if (nodes.every((n) => !n.created)) throw new TesseraClientError('ALREADY_EXISTS', `tenant ${name} already exists on every node`);
    return { tenant: name, nodes };
  }

  /**
   * A new API key of `tenant` on every node: one key per node (each node keeps only its hash), so the
   * tenant's own Cluster holds one NodeClient per node with that node's key (see withApiKeys).
   */
  async createApiKeys(tenant: string, role?: 'tenant' | 'admin'): Promise<{ node: number; id: string; apiKey: string }[]> {
    const made = await Promise.all(this.nodes.map((n) => n.createApiKey(tenant, role)));
    return made.map((m, k) => ({ node: this.indices[k]!, id: m.id, apiKey: m.apiKey }));
  }

  /** The same nodes with other API keys (the k-th node in index order uses apiKeys[k]; node i uses apiKeys[i - 1] in a cluster of nodes 1..n): e.g. a tenant's keys from createApiKeys. */
  withApiKeys(apiKeys: readonly string[]): Cluster {
    if (apiKeys.length !== this.size) throw new TesseraClientError('BAD_INPUT', `expected ${this.size} API keys, one per node`);
    return new Cluster(
      this.nodes.map((n, k) => new NodeClient({ ...n.options, index: this.indices[k]!, apiKey: apiKeys[k]! })),
      this.defaults,
    );
  }

  /** The nodes that hold a key version (its committee, core/committee.ts): the players of its refresh, rotation and transitions. */
  private async holdersOf(keyId: string, version?: number): Promise<number[]> {
    return [...partyIndices(packageFromJson((await this.getKey(keyId, version)).publicPackage))];
  }

  /** New shares of a key version for every node of its committee (partyIndices); the public key stays. */
  async refresh(o: { keyId: string; version?: number }): Promise<RefreshResponse> {
    const request: SessionRequest = { operation: 'refresh', sessionId: newSessionId(), keyId: o.keyId, ...(o.version ? { version: o.version } : {}) };
    const results = await this.run<RefreshResponse>(await this.holdersOf(o.keyId, o.version), request, async (node) => {
      const info = await this.getKey(o.keyId, o.version, node);
      return { keyId: o.keyId, version: info.version, epoch: info.epoch };
    });
    this.forgetKey(o.keyId); // a refresh invalidates the nodes' pools of the key (new epoch)
    assertSame(results.map((r) => String(r.epoch)), 'epoch');
    return results[0]!;
  }

  /**
   * Reshare a key version to a new committee and threshold (issue 13), the public key unchanged:
   * 1. the key's current record is read from every node (the newest epoch wins: a node that missed a
   *    commit, or an old holder not yet handed off, answers an older one), and with it its committee;
   * 2. `dealers` (default: the first t holders that answered with it) deal sub-shares of their shares
   *    to `nodes` in one session of dealers ∪ nodes, each player asked by its own operator's SDK after
   *    every player's hook approved the same request (as refresh and rotate run); the request names the
   *    old package's digest, so every player reshares the same key state;
   * 3. every player must answer the same new package and certificate statement, the certificate must
   *    carry every player's vote (checked under their identity keys here), the group key is unchanged;
   * 4. old holders that were not players are handed the certificate and the new package: they erase
   *    their shares. One that cannot be reached is reported (`handoff[].error`); it erases when
   *    `tessera repair` reaches it, and until then holds a share of an epoch no new share combines with.
   * `onProgress` hears each step, in words.
   */
  async reshare(keyId: string, o: ReshareOptions, onProgress?: (step: string) => void): Promise<ReshareResult> {
    const step = (text: string) => {
      try {
        onProgress?.(text);
      } catch {
        // A progress display that fails does not stop a reshare.
      }
    };
    if (typeof o !== 'object' || o === null) throw new TesseraClientError('BAD_INPUT', 'reshare: expected options { threshold, nodes, dealers?, version? }');
    const nodes = nodeListOf(o.nodes, 'nodes', this.indices);
    const threshold = o.threshold;
    derivationInput(() => checkCommittee(nodes, threshold, 'nodes'));

    step('reading the key from every node');
    const answers = await Promise.allSettled(this.nodes.map((n) => n.getKey(keyId, o.version)));
    const records = answers.flatMap((r, k) => (r.status === 'fulfilled' && r.value.keyId === keyId ? [[this.indices[k]!, r.value] as const] : []));
    if (records.length === 0) {
      const reasons = answers.map((r) => (r as PromiseRejectedResult).reason as unknown);
      throw reasons.find((e) => e instanceof TesseraClientError && e.code === 'NOT_FOUND') ?? reasons[0];
    }
    const newest = (a: KeyInfo, b: KeyInfo) => (b.version !== a.version ? b.version - a.version : b.epoch - a.epoch);
    const info = records.map(([, r]) => r).sort(newest)[0]!;
    const pkg = packageFromJson(info.publicPackage);
    const holders = partyIndices(pkg);
    const current = new Set(records.filter(([, r]) => r.version === info.version && r.epoch === info.epoch).map(([i]) => i));

    let dealers: number[];
    if (o.dealers !== undefined) {
      dealers = nodeListOf(o.dealers, 'dealers', this.indices);
      const outside = dealers.filter((i) => !isParty(pkg, i));
      if (outside.length) throw new TesseraClientError('BAD_INPUT', `dealers: node(s) ${outside.join(',')} hold no share of key ${keyId} version ${info.version} (its nodes: ${holders.join(',')})`);
      if (dealers.length < pkg.threshold) throw new TesseraClientError('BAD_INPUT', `dealers: give at least the key's threshold ${pkg.threshold} of its nodes (${holders.join(',')}), got ${dealers.length}`);
    } else {
      dealers = holders.filter((i) => current.has(i)).slice(0, pkg.threshold);
      if (dealers.length < pkg.threshold) {
        throw new TesseraClientError(
          'UNAVAILABLE',
          `key ${keyId} version ${info.version} needs ${pkg.threshold} of its nodes (${holders.join(',')}) to deal; only ${dealers.join(',') || 'none'} answered with its current epoch ${info.epoch}`,
        );
      }
    }
    const players = [...new Set([...dealers, ...nodes])].sort((a, b) => a - b);
    const sessionId = newSessionId();
    const request: Extract<SessionRequest, { operation: 'reshare' }> = {
      operation: 'reshare',
      sessionId,
      keyId,
      suite: info.suite,
      version: info.version,
      threshold,
      nodes,
      dealers,
      oldPackageDigest: toHex(publicPackageDigest(pkg)),
    };

    step(`session of nodes ${players.join(',')} (dealers ${dealers.join(',')}, new committee ${nodes.join(',')} with threshold ${threshold})`);
    let results: ReshareResponse[];
    try {
      results = await this.run<ReshareResponse>(players, request, (node) => committedReshare(this.node(node), keyId, info.version, sessionId, node, dealers));
    } finally {
      // A reshare invalidates the nodes' pools of the key (new epoch, new committee); one that failed may have committed.
      this.forgetKey(keyId);
    }

    step('checking the answers');
    assertSame(results.map((r) => `${r.keyId}/${r.version}/${r.epoch}/${r.threshold}/${r.indices.join(',')}`), 'reshare result');
    assertSame(results.map((r) => JSON.stringify(r.publicPackage)), 'public package');
    const membership = new Map(await Promise.all(players.map(async (i) => [i, await this.node(i).identityKey()] as const)));
    const cert = checkedReshareCertificate(results.map((r) => r.certificate), request, players, membership);
    const answer = results[0]!;
    const next = packageFromJson(answer.publicPackage);
    const problem =
      answer.keyId !== keyId || answer.version !== info.version || cert.version !== info.version
        ? `the nodes answered for key ${answer.keyId} version ${answer.version}`
        : next.threshold !== threshold || answer.threshold !== threshold
          ? `the new threshold is ${next.threshold}, not ${threshold}`
          : answer.indices.join(',') !== nodes.join(',') || partyIndices(next).join(',') !== nodes.join(',')
            ? `the new committee is ${partyIndices(next).join(',')}, not ${nodes.join(',')}`
            : !(next.epoch > pkg.epoch)
              ? `the new epoch ${next.epoch} is not above the old ${pkg.epoch}`
              : next.suite !== pkg.suite || toHex(next.commitments[0]!) !== toHex(pkg.commitments[0]!)
                ? 'the new package has another group key'
                : undefined;
    if (problem) throw new TesseraClientError('VERIFICATION_FAILED', `reshare of ${keyId}: ${problem}`);

    const outsiders = holders.filter((i) => !players.includes(i));
    if (outsiders.length) step(`handing the certificate to old holders ${outsiders.join(',')}`);
    const handoff = await Promise.all(
      outsiders.map(async (i): Promise<ReshareResult['handoff'][number]> => {
        try {
          const r = await this.node(i).reshareHandoff(keyId, { certificate: answer.certificate, publicPackage: answer.publicPackage });
          return { node: i, outcome: r.outcome };
        } catch (e) {
          const err = e as TesseraClientError;
          return { node: i, error: `${err.code ?? 'ERROR'}: ${err.message}` };
        }
      }),
    );

    step('reading the new key');
    // From the first node of the new committee that answers (one of them may have gone down since).
    let key: KeyInfo | undefined;
    let from = nodes[0]!;
    for (const i of nodes) {
      try {
        key = await this.getKey(keyId, info.version, (from = i));
        break;
      } catch (e) {
        if (i === nodes[nodes.length - 1] || !isUnreachable(e)) throw e;
      }
    }
    if (key!.publicKey !== info.publicKey || JSON.stringify(key!.publicPackage) !== JSON.stringify(answer.publicPackage)) {
      throw new TesseraClientError('VERIFICATION_FAILED', `reshare of ${keyId}: node ${from} holds another key record than the session made`, { node: from });
    }
    return {
      keyId,
      version: info.version,
      suite: info.suite,
      publicKey: info.publicKey,
      threshold,
      nodes,
      epoch: next.epoch,
      previous: { threshold: pkg.threshold, nodes: [...holders], epoch: pkg.epoch },
      dealers,
      sessionId,
      handoff,
      key: key!,
    };
  }

  // ---- cluster membership (issue 13, items 2 and 3: admin API keys of every node)

  /**
   * This cluster acting for `tenant` with its admin API keys: every node call names the tenant
   * (NodeClient.forTenant), so reshare, listKeys, getKey, repair and the rest act on that tenant's keys.
   */
  forTenant(tenant: string): Cluster {
    return new Cluster(
      this.nodes.map((n) => n.forTenant(tenant)),
      this.defaults,
    );
  }

  /**
   * The quantum-readiness inventory (sdk/inventory.ts buildKeysReport, `tessera keys report`): every
   * version of every key, with what protects it. An admin API key covers every tenant (listTenants, then
   * listKeys acting for each, as reshareAll does); a key that may not list tenants covers its own
   * tenant. At rest is what each node reports in GET /v1/node `atRest`; a node that does not answer is
   * reported as such, and the keys it holds show at rest "unknown".
   */
  async keysReport(o: { now?: number } = {}): Promise<KeysReport> {
    const infos = await Promise.allSettled(this.nodes.map((n) => n.info()));
    const nodes: NodeProtection[] = infos.map((r, k) =>
      r.status === 'fulfilled'
        ? { index: this.indices[k]!, answered: true, ...(r.value.atRest ? { atRest: r.value.atRest } : {}) }
        : { index: this.indices[k]!, answered: false, error: r.reason instanceof Error ? r.reason.message : String(r.reason) },
    );
    let tenants: string[] | null;
    try {
      tenants = await this.listTenants();
    } catch (e) {
      if (!(e instanceof TesseraClientError && e.code === 'POLICY_DENIED')) throw e;
      tenants = null;
    }
    const keys: { tenant: string | null; key: KeyInfo }[] = [];
    if (tenants === null) for (const key of await this.listKeys()) keys.push({ tenant: null, key });
    else for (const tenant of tenants) for (const key of await this.forTenant(tenant).listKeys()) keys.push({ tenant, key });
    return buildKeysReport({
      keys,
      tenants,
      nodes,
      links: this.nodes.map((n, k) => ({ index: this.indices[k]!, url: n.options.url })),
      tlsLibrary: `OpenSSL ${process.versions.openssl}`,
      now: o.now ?? Date.now(),
    });
  }

  /** Every tenant of every node that answers (their union, by name, ordered). */
  async listTenants(): Promise<string[]> {
    const settled = await Promise.allSettled(this.nodes.map((n) => n.listTenants()));
    const lists = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (lists.length === 0) throw (settled[0] as PromiseRejectedResult).reason;
    return [...new Set(lists.flat().map((t) => t.name))].sort();
  }

  /**
   * Every node's committed membership, compared (sdk/membership.ts compareMemberships): whether they
   * agree; else which nodes are behind (a lower epoch: they missed a change) or diverged (another
   * membership at an epoch), and which did not answer.
   */
  async membership(): Promise<MembershipReport> {
    const answers = await readMemberships(this.indices.map((i) => [i, this.node(i)] as const));
    const first = compareMemberships(answers);
    const lagging = first.nodes.some((n) => n.status === 'behind');
    if (!lagging) return first;
    // Behind or on another branch: compare with the digests the newest history holds for older epochs.
    const history = await historyOf(first.nodes.filter((n) => n.status === 'current').map((n) => this.node(n.node)));
    const digests = new Map(history.map((h) => [h.epoch, h.digest] as const));
    return compareMemberships(answers, (epoch) => digests.get(epoch));
  }

  /**
   * Change the cluster's membership to `next` (each member's index and identity key; url and API key for
   * a node this Cluster has no client for), with one certified session of every member whose identity
   * the change keeps (core/membership.ts membershipVoters), each asked in parallel with the same request
   * after every one's operator hook approved it:
   * - if the nodes already committed `next` (a rerun after a crash mid-change), nothing new is run: the
   *   nodes still behind are handed the certificates they lack (from a current node's history);
   * - voters behind the newest membership are brought forward first, the same way;
   * - after the session, the certificate (checked here: verifyMembershipChange) is handed to any voter
   *   whose call failed, and to the added and replaced nodes that can be reached (they may refuse: reported).
   * `onProgress` hears each step, in words.
   */
  async changeMembership(next: readonly MemberSpec[], o: { onProgress?: (step: string) => void } = {}): Promise<MembershipChangeResult> {
    const step = quietly(o.onProgress);
    step('reading every node\'s membership');
    const report = await this.membership();
    const current = report.membership;
    if (!current) throw new TesseraClientError('UNAVAILABLE', `no node answered with its membership: ${report.nodes.map((n) => `node ${n.node}: ${n.error}`).join('; ')}`);
    const diverged = report.nodes.filter((n) => n.status === 'diverged').map((n) => n.node);
    if (diverged.length) throw new TesseraClientError('BAD_STATE', `node(s) ${diverged.join(',')} hold another membership than the cluster's epoch ${current.epoch} (tessera cluster membership shows it)`);
    // Clients for members this Cluster cannot reach by index (a node being added), from their specs.
    const given = new Map(
      next.filter((m) => m.url !== undefined && m.apiKey !== undefined).map((m) => [m.index, this.clientFor(m)] as const),
    );
    const reach = (i: number) => given.get(i) ?? this.byIndex.get(i);
    const history = () => historyOf(report.nodes.filter((n) => n.status === 'current').map((n) => this.node(n.node)));

    const already = membershipOf(current.epoch, next);
    if (toHex(membershipDigest(already)) === report.digest) {
      step(`the cluster already committed this membership (epoch ${current.epoch}): finishing the nodes behind`);
      const chain = await history();
      const last = chain.find((h) => h.epoch === current.epoch);
      const behind = report.nodes.filter((n) => n.status === 'behind');
      const from = behind.length ? await this.node(behind[0]!.node).getMembership().then((r) => (r.epoch === current.epoch - 1 ? membershipOfResponse(r) : undefined), () => undefined) : undefined;
      const knownKey = (i: number) => {
        const k = this.byIndex.get(i)?.options.identityPublicKey;
        return k === undefined ? undefined : typeof k === 'string' ? normalizeHex(k, 'identityPublicKey') : toHex(k);
      };
      const change = from ? checkedStep(from, already) : changeFromCertificate(last?.certificate, already, knownKey);
      const nodes = await bringForward(chain, [...new Set([...behind.map((n) => n.node), ...change.added, ...change.replaced])], reach, report);
      return { epoch: current.epoch, members: membersToJson(already), change, certificate: last?.certificate, resumed: true, nodes };
    }

    const to = membershipOf(current.epoch + 1, next);
    const change = checkedStep(current, to);
    const voters = change.unchanged;
    const unknown = voters.filter((i) => !this.byIndex.has(i));
    if (unknown.length) throw new TesseraClientError('BAD_INPUT', `node(s) ${unknown.join(',')} must vote on the change but this cluster has no client for them`);
    const lagging = report.nodes.filter((n) => n.status !== 'current' && voters.includes(n.node));
    if (lagging.some((n) => n.status === 'behind')) {
      step(`bringing node(s) ${lagging.map((n) => n.node).join(',')} to epoch ${current.epoch} first`);
      await bringForward(await history(), lagging.map((n) => n.node), reach, report);
    }
    const request: Extract<SessionRequest, { operation: 'membership' }> = {
      operation: 'membership',
      sessionId: newSessionId(),
      keyId: MEMBERSHIP_KEY_ID,
      epoch: to.epoch,
      members: membersToJson(to),
      added: change.added,
      removed: change.removed,
      replaced: change.replaced,
    };
    // Every voter's operator approves before any node is asked (as every session the Cluster runs).
    await Promise.all(voters.map((i) => this.node(i).authorize(request)));
    step(`membership session of nodes ${voters.join(',')} (epoch ${to.epoch}: ${describeChange(change)})`);
    const settled = await Promise.allSettled(voters.map((i) => this.node(i).changeMembership(request, { approved: true })));
    let certificate = settled.find((r): r is PromiseFulfilledResult<ChangeMembershipResponse> => r.status === 'fulfilled')?.value.certificate;
    if (certificate === undefined) {
      // No answer carried it: a node may still have committed (its answer lost). Ask the histories.
      const again = await historyOf(voters.map((i) => this.node(i)));
      certificate = again.find((h) => h.epoch === to.epoch && h.digest === toHex(membershipDigest(to)))?.certificate;
    }
    if (certificate === undefined) {
      const errs = settled.map((r) => (r as PromiseRejectedResult).reason as TesseraClientError);
      throw errs.find((e) => e?.culprits?.length) ?? errs.find((e) => e?.code !== 'SESSION_ABORTED') ?? errs[0];
    }
    try {
      verifyMembershipChange(current, to, decodeCertificate(fromHex(certificate, 'certificate')));
    } catch (e) {
      throw new TesseraClientError('VERIFICATION_FAILED', `the membership change's certificate does not check: ${(e as Error).message}`);
    }
    const nodes: MembershipChangeResult['nodes'] = voters.flatMap((i, k) => (settled[k]!.status === 'fulfilled' ? [{ node: i, outcome: 'committed' }] : []));
    const others = [...voters.filter((_, k) => settled[k]!.status === 'rejected'), ...change.added, ...change.replaced];
    if (others.length) step(`handing the certificate to node(s) ${others.join(',')}`);
    const entry = { epoch: to.epoch, members: membersToJson(to), certificate };
    nodes.push(...(await Promise.all(others.map((i) => handTo(i, [entry], reach)))));
    return { epoch: to.epoch, members: membersToJson(to), change, certificate, resumed: false, nodes: nodes.sort((a, b) => a.node - b.node) };
  }

  /**
   * Move every key version of every tenant (active, retired or archived; not destroyed) onto the
   * cluster's current membership: its committee minus the nodes that left, plus `change.added`
   * (replaced indices stay: the reshare re-deals their share), threshold unchanged, through
   * Cluster.reshare acting for the tenant (forTenant). Dealers are holders still members with their old
   * identity. Resumable: a version already on its target committee, whose replaced nodes already hold
   * its current epoch, is skipped. A version that cannot move (its threshold above the new committee's
   * size, too few dealers, a failed session) is reported and the others go on.
   * Without `change`, it is read from the newest change the nodes committed: its certificate's voters
   * kept their identity; the other members joined (added to a key that they do not hold, replaced in one they do).
   * `onProgress` hears one line per key version: "[k/N] tenant/keyId vV: resharing onto 1,2,4 ... done"
   * (or "skipped (already on the membership)", or "failed: reason").
   */
  async reshareAll(change?: { added?: readonly number[]; replaced?: readonly number[] }, o: { onProgress?: (line: string) => void; concurrency?: number } = {}): Promise<ReshareAllResult> {
    const say = quietly(o.onProgress);
    const concurrency = o.concurrency ?? 2;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new TesseraClientError('BAD_INPUT', 'concurrency: expected 1..64');
    const report = await this.membership();
    if (!report.membership) throw new TesseraClientError('UNAVAILABLE', 'no node answered with its membership');
    const members = report.membership.members.map((m) => m.index);
    const missing = members.filter((i) => !this.byIndex.has(i));
    if (missing.length) throw new TesseraClientError('BAD_INPUT', `node(s) ${missing.join(',')} are members but this cluster has no client for them (add them to the cluster file)`);
    for (const i of [...(change?.added ?? []), ...(change?.replaced ?? [])]) {
      if (!members.includes(i)) throw new TesseraClientError('BAD_INPUT', `node ${i} is not a member of the cluster's membership (epoch ${report.epoch}: ${members.join(',')})`);
    }
    const diverged = report.nodes.filter((n) => n.status === 'diverged').map((n) => n.node);
    if (diverged.length) throw new TesseraClientError('BAD_STATE', `node(s) ${diverged.join(',')} hold another membership than the cluster's epoch ${report.epoch} (tessera cluster membership shows it)`);
    const chain = await historyOf(report.nodes.filter((n) => n.status === 'current').map((n) => this.node(n.node)));
    const behind = report.nodes.filter((n) => n.status === 'behind').map((n) => n.node);
    if (behind.length) {
      // A change some member missed (a crash mid-change): finish it there first, or its sessions fail.
      say(`bringing node(s) ${behind.join(',')} to membership epoch ${report.epoch}`);
      await bringForward(chain, behind, (i) => this.byIndex.get(i), report);
    }
    let joined: number[] = [];
    if (!change) {
      const last = chain.find((h) => h.epoch === report.epoch);
      if (last) {
        const voters = [...asClientError(() => decodeCertificate(fromHex(last.certificate, 'certificate'))).votes.keys()];
        joined = members.filter((i) => !voters.includes(i));
      }
    }
    const moveFor = (committee: readonly number[]): KeyMoveChange =>
      change
        ? { members, added: [...(change.added ?? [])], replaced: [...(change.replaced ?? [])] }
        : { members, added: joined.filter((i) => !committee.includes(i)), replaced: joined.filter((i) => committee.includes(i)) };

    // Tenants are each node's own: an added (or re-created) node lacks them until made there.
    const held = await Promise.allSettled(this.nodes.map((n) => n.listTenants()));
    const tenants = [...new Set(held.flatMap((r) => (r.status === 'fulfilled' ? r.value.map((t) => t.name) : [])))].sort();
    if (held.every((r) => r.status === 'rejected')) throw (held[0] as PromiseRejectedResult).reason;
    for (const [k, r] of held.entries()) {
      if (r.status !== 'fulfilled' || !members.includes(this.indices[k]!)) continue;
      for (const t of tenants.filter((name) => !r.value.some((x) => x.name === name))) {
        say(`creating tenant ${t} on node ${this.indices[k]}`);
        await this.nodes[k]!.createTenant(t).catch((e: TesseraClientError) => {
          if (e.code !== 'ALREADY_EXISTS') throw e;
        });
      }
    }
    // One Cluster per tenant (its NodeClients learn each node's identity key once).
    const asTenant = new Map(tenants.map((t) => [t, this.forTenant(t)] as const));
    const work: { tenant: string; key: KeyInfo }[] = [];
    for (const tenant of tenants) {
      for (const key of await asTenant.get(tenant)!.listKeys()) if (key.state !== 'destroyed') work.push({ tenant, key });
    }
    const total = work.length;
    const result: ReshareAllResult = { total, reshared: 0, skipped: 0, failed: 0, failures: [] };
    let doneCount = 0;
    const one = async ({ tenant, key }: { tenant: string; key: KeyInfo }) => {
      const name = `${tenant}/${key.keyId} v${key.version}`;
      const committee = key.publicPackage.indices ?? allPlayers(key.parties);
      const move = moveFor(committee);
      let line: string;
      try {
        const holds = new Map<number, boolean>();
        for (const r of move.replaced.filter((i) => committee.includes(i))) {
          const held = await asTenant.get(tenant)!.getKey(key.keyId, key.version, r).then((k) => k.epoch >= key.epoch, () => false);
          holds.set(r, held);
        }
        const plan = planKeyReshare({ committee, threshold: key.threshold }, move, (i) => holds.get(i) === true);
        if (plan.action === 'skip') {
          result.skipped++;
          line = `${name}: skipped (already on the membership)`;
        } else if (plan.action === 'fail') {
          throw new TesseraClientError('BAD_PARAMETERS', plan.reason);
        } else {
          // Dealers: the eligible holders that hold the key's current epoch (one behind or down would fail the session).
          const current = await Promise.all(plan.dealers.map((i) => asTenant.get(tenant)!.getKey(key.keyId, key.version, i).then((k) => k.epoch === key.epoch, () => false)));
          const dealers = plan.dealers.filter((_, k) => current[k]).slice(0, key.threshold);
          if (dealers.length < key.threshold) {
            throw new TesseraClientError('UNAVAILABLE', `only ${dealers.length} of the holders that may deal (${plan.dealers.join(',')}) answered with its current epoch ${key.epoch}, and ${key.threshold} are needed`);
          }
          await asTenant.get(tenant)!.reshare(key.keyId, { threshold: key.threshold, nodes: plan.nodes, dealers, version: key.version });
          result.reshared++;
          line = `${name}: resharing onto ${plan.nodes.join(',')} ... done`;
        }
      } catch (e) {
        const reason = e instanceof TesseraClientError ? `${e.code}: ${e.message}` : (e as Error).message;
        result.failed++;
        result.failures.push({ tenant, keyId: key.keyId, version: key.version, reason });
        line = `${name}: failed: ${reason}`;
      }
      say(`[${++doneCount}/${total}] ${line}`);
    };
    // Up to `concurrency` keys at once, but the versions of one key one after another: a node stages one
    // change per key (core/commit.ts), so a second version's reshare started while the first one's is
    // staged is refused (BAD_STATE "uncommitted reshare") and strands that version until a repair.
    await forEachGroup(groupedBy(work, (w) => `${w.tenant}\0${w.key.keyId}`), concurrency, one);
    result.failures.sort((a, b) => (a.tenant + a.keyId < b.tenant + b.keyId ? -1 : 1) || a.version - b.version);
    return result;
  }

  /**
   * Add a node (its index, identity key, url and API key) to the membership, then reshare every key onto
   * it (changeMembership, then reshareAll on the new Cluster, which is returned). A rerun after a crash
   * resumes: a node already a member with that identity is not added again. `onCommitted` runs once the
   * membership holds the node, before the keys move (the CLI writes its cluster file there).
   */
  async addNode(node: MemberSpec & { url: string; apiKey: string }, o: MembershipOpOptions = {}): Promise<MembershipOpResult> {
    const key = identityKeyOf(node.identityPublicKey, 'identity');
    const current = await this.currentMembership();
    const held = current.members.find((m) => m.index === node.index);
    const members = held && toHex(held.identityPublicKey) === toHex(key) ? specsOf(current) : nextMembers(current, { add: node }).members;
    const cluster = this.withClient(node.index, this.clientFor(node));
    return cluster.applyOp(members.map((m) => (m.index === node.index ? node : m)), { added: [node.index], replaced: [] }, o);
  }

  /** Remove a node from the membership, then reshare every key off it (its shares die: the others move epoch). Returns the Cluster without it. */
  async removeNode(index: number, o: MembershipOpOptions = {}): Promise<MembershipOpResult> {
    const current = await this.currentMembership();
    const member = current.members.some((m) => m.index === index);
    const members = member ? nextMembers(current, { remove: index }).members : specsOf(current);
    if (member) {
      // Before anything changes: a key whose threshold is above the nodes it would keep would be stranded.
      const after = members.map((m) => m.index);
      const stranded: string[] = [];
      for (const tenant of await this.listTenants()) {
        for (const key of await this.forTenant(tenant).listKeys()) {
          if (key.state === 'destroyed') continue;
          const plan = planKeyReshare({ committee: key.publicPackage.indices ?? allPlayers(key.parties), threshold: key.threshold }, { members: after, added: [], replaced: [] }, () => true);
          if (plan.action === 'fail') stranded.push(`${tenant}/${key.keyId} v${key.version}: ${plan.reason}`);
        }
      }
      if (stranded.length) {
        throw new TesseraClientError('BAD_PARAMETERS', `removing node ${index} would strand ${stranded.length} key version(s); nothing was changed: ${stranded.slice(0, 3).join('; ')}${stranded.length > 3 ? '; ...' : ''}`);
      }
    }
    const cluster = new Cluster(
      this.nodes.filter((n, k) => this.indices[k] !== index),
      this.defaults,
    );
    return cluster.applyOp(members, { added: [], replaced: [] }, o);
  }

  /**
   * Repair a node that lost its data directory: the node at `index` came back with a new identity key (and
   * maybe a new url or API key). The membership takes the new key, then every key it held is re-dealt to
   * it by the other holders (a reshare onto the same committee). Returns the Cluster with its new client.
   */
  async replaceNode(node: { index: number; identityPublicKey: string | Uint8Array; url?: string; apiKey?: string; ca?: string }, o: MembershipOpOptions = {}): Promise<MembershipOpResult> {
    const key = identityKeyOf(node.identityPublicKey, 'identity');
    const current = await this.currentMembership();
    const held = current.members.find((m) => m.index === node.index);
    const members = held && toHex(held.identityPublicKey) === toHex(key) ? specsOf(current) : nextMembers(current, { replace: node }).members;
    const old = this.byIndex.get(node.index);
    const client = old
      ? new NodeClient({ ...old.options, index: node.index, identityPublicKey: toHex(key), ...(node.url ? { url: node.url } : {}), ...(node.apiKey ? { apiKey: node.apiKey } : {}), ...(node.ca ? { ca: node.ca } : {}) })
      : this.clientFor({ ...node, identityPublicKey: key });
    return this.withClient(node.index, client).applyOp(
      members.map((m) => (m.index === node.index ? { ...node, identityPublicKey: toHex(key) } : m)),
      { added: [], replaced: [node.index] },
      o,
    );
  }

  /** The newest membership the nodes hold (refusing a cluster whose nodes diverged). */
  private readonly currentMembership = async (): Promise<Membership> => {
    const report = await this.membership();
    if (!report.membership) throw new TesseraClientError('UNAVAILABLE', `no node answered with its membership: ${report.nodes.map((n) => `node ${n.node}: ${n.error}`).join('; ')}`);
    return report.membership;
  };

  /** A client for a member given by spec (url and API key), with this Cluster's deadline and hook. */
  private readonly clientFor = (m: { index: number; url?: string; apiKey?: string; ca?: string; identityPublicKey: string | Uint8Array }): NodeClient => {
    if (m.url === undefined || m.apiKey === undefined) throw new TesseraClientError('BAD_INPUT', `node ${m.index}: give its url and API key`);
    const like = this.nodes[0]!.options;
    return new NodeClient({
      url: m.url,
      apiKey: m.apiKey,
      index: m.index,
      identityPublicKey: toHex(identityKeyOf(m.identityPublicKey, 'identity')),
      ...(m.ca !== undefined ? { ca: m.ca } : {}),
      ...(like.timeoutMs !== undefined ? { timeoutMs: like.timeoutMs } : {}),
      ...(like.approve !== undefined ? { approve: like.approve } : {}),
      ...(like.tenant !== undefined ? { tenant: like.tenant } : {}),
    });
  };

  /** This Cluster with `client` as node `index` (replacing the one it had). */
  private readonly withClient = (index: number, client: NodeClient): Cluster =>
    new Cluster([...this.nodes.filter((_, k) => this.indices[k] !== index), new NodeClient({ ...client.options, index })], this.defaults);

  /** changeMembership, then (after `onCommitted`) reshareAll: the body of addNode, removeNode and replaceNode, run on the new Cluster. */
  private readonly applyOp = async (members: readonly MemberSpec[], change: { added: number[]; replaced: number[] }, o: MembershipOpOptions): Promise<MembershipOpResult> => {
    const membership = await this.changeMembership(members, { ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
    await o.onCommitted?.(membership);
    const joining = [...change.added, ...change.replaced];
    if (joining.length) {
      // The coordinator admits a new identity once the voters announce the change: wait for it (bounded),
      // then hand the certificate to a joining node that could not take it before (started just now).
      quietly(o.onProgress)(`waiting for node(s) ${joining.join(',')} to connect`);
      const timeoutMs = o.joinTimeoutMs ?? 60_000;
      if (!(await waitConnected(this, joining, this.indices.filter((i) => !joining.includes(i)), timeoutMs))) {
        quietly(o.onProgress)(`node(s) ${joining.join(',')} did not connect within ${Math.round(timeoutMs / 1000)} s: the keys that need them will fail (start them, then run reshare-all)`);
      }
      const missed = membership.nodes.filter((n) => joining.includes(n.node) && n.outcome === 'not-reached').map((n) => n.node);
      if (missed.length && membership.certificate) {
        const entry = { epoch: membership.epoch, members: membership.members, certificate: membership.certificate };
        const again = await Promise.all(missed.map((i) => handTo(i, [entry], (x) => this.byIndex.get(x))));
        membership.nodes = [...membership.nodes.filter((n) => !missed.includes(n.node)), ...again].sort((a, b) => a.node - b.node);
      }
    }
    quietly(o.onProgress)(`resharing every key of every tenant onto the membership of epoch ${membership.epoch}`);
    const reshare = await this.reshareAll(change, { ...(o.onProgress ? { onProgress: o.onProgress } : {}), ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}) });
    return { cluster: this, membership, reshare };
  };
}

/** What Cluster.changeMembership did. */
export interface MembershipChangeResult {
  /** The membership's epoch now. */
  epoch: number;
  members: MemberJson[];
  /** What changed (on a resumed run without a node still at the old epoch, read from the certificate's voters: `removed` is then empty). */
  change: MembershipChange;
  /** Hex of the change's commit certificate. */
  certificate?: string;
  /** The nodes had already committed it (a rerun): only the nodes behind were finished. */
  resumed: boolean;
  /** Per node asked: committed in the session, applied or already held the certificate, or not reached / refused (with why). */
  nodes: { node: number; outcome: 'committed' | 'applied' | 'already-committed' | 'not-reached'; error?: string }[];
}

/** What Cluster.reshareAll did: how many key versions moved, were already there, or failed (with why). */
export interface ReshareAllResult {
  total: number;
  reshared: number;
  skipped: number;
  failed: number;
  failures: { tenant: string; keyId: string; version: number; reason: string }[];
}

export interface MembershipOpOptions {
  /** Each step of the change and one line per key version (see reshareAll). */
  onProgress?: (line: string) => void;
  /** Key versions reshared at once (default 2). */
  concurrency?: number;
  /** Runs once the membership change is committed, before the keys move (e.g. start the added node). */
  onCommitted?: (result: MembershipChangeResult) => void | Promise<void>;
  /** How long to wait for an added or replaced node to connect before resharing (default 60 s; the keys that cannot reach it fail and a rerun resumes). */
  joinTimeoutMs?: number;
}

/** What Cluster.addNode, removeNode and replaceNode did, and the Cluster of the new membership. */
export interface MembershipOpResult {
  cluster: Cluster;
  membership: MembershipChangeResult;
  reshare: ReshareAllResult;
}

/** A progress callback that cannot stop the work it reports. */
function quietly(fn: ((text: string) => void) | undefined): (text: string) => void {
  return (text) => {
    try {
      fn?.(text);
    } catch {
      // A progress display that fails does not stop a membership change.
    }
  };
}

/** A tenant name for the acting-tenant header: printable, no spaces (the node checks it is a tenant). */
function tenantName(tenant: unknown): string {
  if (typeof tenant !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(tenant)) throw new TesseraClientError('BAD_INPUT', 'tenant: expected a tenant name');
  return tenant;
}

/** Every node's membership, its digest recomputed here (core/membership.ts), or why it gave none. */
async function readMemberships(nodes: readonly (readonly [number, NodeClient])[]): Promise<MembershipAnswer[]> {
  return Promise.all(
    nodes.map(async ([node, client]): Promise<MembershipAnswer> => {
      try {
        const response = await client.getMembership();
        const membership = membershipOfResponse(response, `node ${node}'s membership`);
        return { node, membership, digest: toHex(membershipDigest(membership)), committed: response.committed };
      } catch (e) {
        const err = e as TesseraClientError;
        return { node, error: `${err.code ?? 'ERROR'}: ${err.message}` };
      }
    }),
  );
}

type HistoryEntry = { epoch: number; members: MemberJson[]; certificate: string; digest: string };

/** The longest membership history any of `clients` gives (oldest first), each entry's digest recomputed. */
async function historyOf(clients: readonly NodeClient[]): Promise<HistoryEntry[]> {
  const settled = await Promise.allSettled(clients.map((c) => c.membershipHistory()));
  let best: HistoryEntry[] = [];
  for (const r of settled) {
    if (r.status !== 'fulfilled' || !Array.isArray(r.value.changes)) continue;
    try {
      const chain = r.value.changes.map((c) => ({ epoch: c.epoch, members: c.members, certificate: c.certificate, digest: toHex(membershipDigest(membershipOfResponse(c))) }));
      if ((chain.at(-1)?.epoch ?? -1) > (best.at(-1)?.epoch ?? -1)) best = chain;
    } catch {
      // A history that does not parse is not used; another node's may.
    }
  }
  return best;
}

/** Hand node `node` the membership changes of `entries`, in order; what it answered to the last one. */
async function handTo(node: number, entries: readonly HistoryEntry[] | readonly { epoch: number; members: MemberJson[]; certificate: string }[], reach: (i: number) => NodeClient | undefined): Promise<MembershipChangeResult['nodes'][number]> {
  const client = reach(node);
  if (!client) return { node, outcome: 'not-reached', error: 'this cluster has no client for it (give its url and API key)' };
  let outcome: MembershipChangeResult['nodes'][number] = { node, outcome: 'already-committed' };
  for (const e of entries) {
    try {
      const r = await client.applyMembership({ epoch: e.epoch, members: e.members, certificate: e.certificate });
      if (r.outcome === 'committed') outcome = { node, outcome: 'applied' };
    } catch (err) {
      const x = err as TesseraClientError;
      outcome = { node, outcome: 'not-reached', error: `${x.code ?? 'ERROR'}: ${x.message}` };
    }
  }
  return outcome;
}

/** Bring each of `nodes` forward along `chain` from the epoch the report saw it at (only the last change when unknown). */
async function bringForward(chain: readonly HistoryEntry[], nodes: readonly number[], reach: (i: number) => NodeClient | undefined, report: MembershipReport): Promise<MembershipChangeResult['nodes']> {
  return Promise.all(
    nodes.map((node) => {
      const seen = report.nodes.find((n) => n.node === node)?.epoch;
      const entries = seen === undefined ? chain.slice(-1) : chain.filter((e) => e.epoch > seen);
      return handTo(node, entries, reach);
    }),
  );
}

/**
 * A committed change read from its certificate alone (no node still holds the membership before it):
 * its voters kept their identity; a member that did not vote was added, or replaced when this SDK knows
 * another identity key for its index (`knownKey`). Removed nodes cannot be told: `removed` is empty.
 */
function changeFromCertificate(certificate: string | undefined, to: Membership, knownKey: (index: number) => string | undefined): MembershipChange {
  const all = to.members.map((m) => m.index);
  if (certificate === undefined) return { unchanged: all, added: [], removed: [], replaced: [] };
  const voters = new Set(asClientError(() => decodeCertificate(fromHex(certificate, 'certificate'))).votes.keys());
  const joined = to.members.filter((m) => !voters.has(m.index));
  const replaced = joined.filter((m) => {
    const known = knownKey(m.index);
    return known !== undefined && known !== toHex(m.identityPublicKey);
  });
  return {
    unchanged: all.filter((i) => voters.has(i)),
    added: joined.filter((m) => !replaced.includes(m)).map((m) => m.index),
    removed: [],
    replaced: replaced.map((m) => m.index),
  };
}

/**
 * Wait until each of `nodes` answers /ready (connected to the coordinator) and every node of `peers` that
 * answers sees it online (true), or `timeoutMs` passes (false; no error: the sessions that need it then say why).
 */
async function waitConnected(cluster: Cluster, nodes: readonly number[], peers: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const client = (i: number) => cluster.nodes[cluster.indices.indexOf(i)]!;
  for (;;) {
    const ready = await Promise.all(nodes.map((i) => client(i).probe(2000)));
    if (ready.every((r) => r === 'ready')) {
      const seen = await Promise.all(peers.map((p) => client(p).info().then((info) => nodes.every((i) => info.online.includes(i)), () => true)));
      if (seen.every(Boolean)) return true;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** "adds 4; removes 2; replaces 3" */
function describeChange(c: MembershipChange): string {
  const parts = [c.added.length ? `adds ${c.added.join(',')}` : '', c.removed.length ? `removes ${c.removed.join(',')}` : '', c.replaced.length ? `replaces ${c.replaced.join(',')}` : ''];
  return parts.filter(Boolean).join('; ');
}

/** A membership's members as specs (hex keys). */
function specsOf(m: Membership): MemberSpec[] {
  return m.members.map((x) => ({ index: x.index, identityPublicKey: toHex(x.identityPublicKey) }));
}

/** A list of this cluster's node indices given by the caller: integers, none twice, each a node here; returned ascending. */
function nodeListOf(list: unknown, what: string, indices: readonly number[]): number[] {
  if (!Array.isArray(list) || list.length === 0) throw new TesseraClientError('BAD_INPUT', `${what}: expected a non-empty list of node numbers`);
  const range = isContiguous(indices) ? `1..${indices.length}` : indices.join(',');
  for (const i of list) {
    if (!Number.isSafeInteger(i) || !indices.includes(i as number)) {
      throw new TesseraClientError('BAD_INPUT', `${what}: ${String(i).slice(0, 12)} is not a node of this cluster (${range})`);
    }
  }
  const sorted = [...(list as number[])].sort((a, b) => a - b);
  const twice = sorted.find((v, k) => k > 0 && sorted[k - 1] === v);
  if (twice !== undefined) throw new TesseraClientError('BAD_INPUT', `${what}: node ${twice} is listed twice`);
  return sorted;
}

/**
 * The certificate of a reshare, from every player's answer: all decode to the same statement, for
 * this session, key and operation, and it holds a valid vote of every player under the identity key
 * this SDK knows for it (core/commit.ts verifyCertificate).
 */
function checkedReshareCertificate(
  encoded: readonly string[],
  request: Extract<SessionRequest, { operation: 'reshare' }>,
  players: readonly number[],
  membership: ReadonlyMap<number, Uint8Array>,
): CommitCertificate {
  try {
    const certs = encoded.map((c) => decodeCertificate(fromHex(c, 'certificate')));
    const first = certs[0]!;
    if (!certs.every((c) => sameStatement(c, first))) throw new TesseraClientError('VERIFICATION_FAILED', 'nodes returned certificates of different statements');
    if (toHex(first.session) !== request.sessionId || first.operation !== request.operation || first.keyId !== request.keyId) {
      throw new TesseraClientError('VERIFICATION_FAILED', `the certificate is for ${first.operation} of ${first.keyId} in session ${toHex(first.session)}, not this reshare`);
    }
    for (const c of certs) verifyCertificate(c, membership, players);
    return first;
  } catch (e) {
    if (isTesseraError(e)) throw new TesseraClientError('VERIFICATION_FAILED', `reshare certificate: ${e.message}`);
    throw e;
  }
}

/** What Cluster.reshare is asked (the CLI's `tessera reshare`). */
export interface ReshareOptions {
  /** The new threshold t': 2..nodes.length. */
  threshold: number;
  /** The new committee: node indices of this cluster (any order; used ascending). May overlap the old one, or not. */
  nodes: readonly number[];
  /** The old holders that deal, at least the key's threshold of them. Default: the first t holders that answer with the key's current epoch. */
  dealers?: readonly number[];
  /** Default the newest active version. */
  version?: number;
}

/** What Cluster.reshare did. */
export interface ReshareResult {
  keyId: string;
  version: number;
  suite: string;
  /** Unchanged (checked). */
  publicKey: string;
  threshold: number;
  /** The new committee. */
  nodes: number[];
  epoch: number;
  /** The committee, threshold and epoch before. */
  previous: { threshold: number; nodes: number[]; epoch: number };
  dealers: number[];
  sessionId: string;
  /** Old holders outside the session: what each answered to the handoff, or why it could not be reached (it erases when `tessera repair` reaches it). */
  handoff: { node: number; outcome?: ReshareHandoffResponse['outcome']; error?: string }[];
  /** The key's record afterwards, from a node of the new committee. */
  key: KeyInfo;
}

/**
 * A reshare some player did not answer, but that committed (Cluster.run found its certificate): the
 * answer node `node` would have given, from its record and the certificate it stores.
 */
/**
 * The result of a certified change read from the first of `nodes` that can give it: after a reshare a
 * node that left the committee holds nothing of the key, so the first healthy node may not do.
 */
async function recoverFrom<T>(recover: (node: number) => Promise<T>, nodes: readonly number[]): Promise<T> {
  let last: unknown;
  for (const node of new Set(nodes)) {
    try {
      return await recover(node);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

async function committedReshare(client: NodeClient, keyId: string, version: number, sessionId: string, node: number, dealers: readonly number[]): Promise<ReshareResponse> {
  const [info, status] = await Promise.all([client.getKey(keyId, version), client.commitStatus(keyId)]);
  const certificate = status.certificates.find((c) => c.sessionId === sessionId)?.certificate;
  if (certificate === undefined) throw new TesseraClientError('OUTCOME_UNKNOWN', `node ${node} holds no certificate of reshare session ${sessionId}`, { node });
  const indices = [...partyIndices(packageFromJson(info.publicPackage))];
  const dealer = dealers.includes(node);
  return {
    keyId,
    version: info.version,
    node,
    epoch: info.epoch,
    threshold: info.threshold,
    indices,
    publicPackage: info.publicPackage,
    certificate,
    role: dealer && indices.includes(node) ? 'dealer+receiver' : dealer ? 'dealer' : 'receiver',
  };
}

/** What Cluster.repair did at each node. */
export interface RepairReport {
  keyId: string;
  /** Every certificate any node holds for the key (by session id). */
  certificates: { sessionId: string }[];
  nodes: {
    node: number;
    /** Certificates this node lacked and was handed: committed now, or already committed. */
    applied: { sessionId: string; operation: string; version: number; outcome: string }[];
    /** Staged changes dropped here: some node never staged them and this node never released its vote. */
    dropped: string[];
    /** Certificates it could not apply, or why the node could not be asked. */
    problems: string[];
    /** A staged change still unresolved after the repair: it stays staged, never used. */
    waiting?: { sessionId: string; operation: string; version: number; released: boolean };
    /**
     * Set when this node lacks certified changes the others hold for key versions or epochs it does
     * not have (a keygen, rotate, import or refresh it holds no staged result for): it was restored
     * from an older backup or lost data. Those changes cannot be brought forward without re-dealing its
     * share; they are never half-applied, and the node refuses such a version in a session with nodes
     * ahead of it. `finding` says it in one line.
     */
    restored?: true;
    finding?: string;
    needsReDeal?: { sessionId: string; operation: string; version: number }[];
  }[];
}

/**
 * Per key version, its newest epoch any node holds and that epoch's committee (`nodes`, absent from a
 * node that predates committees: then every node).
 */
function currentCommittees(statuses: readonly (CommitStatusResponse | null | undefined)[]): Map<number, { epoch: number; nodes?: number[] }> {
  const out = new Map<number, { epoch: number; nodes?: number[] }>();
  for (const st of statuses) {
    for (const v of st?.versions ?? []) {
      const had = out.get(v.version);
      if (!had || v.epoch > had.epoch || (v.epoch === had.epoch && had.nodes === undefined && v.nodes !== undefined)) {
        out.set(v.version, { epoch: v.epoch, ...(v.nodes ? { nodes: v.nodes } : {}) });
      }
    }
  }
  return out;
}

/**
 * Whether node `index` lacks certificates the other nodes hold for a version it does not hold, or
 * holds at an older epoch, after the repair (so it could not apply them): what it holds, what the
 * others committed, and the sessions that must be re-dealt. The certificates are decoded only to
 * describe them: each node verified them itself when they were handed over.
 */
function restoredFinding(
  keyId: string,
  index: number,
  position: number,
  statuses: readonly (CommitStatusResponse | null | undefined)[],
): { finding: string; needsReDeal: { sessionId: string; operation: string; version: number }[] } | undefined {
  const mine = statuses[position];
  const myVersions = new Map((mine?.versions ?? []).map((v) => [v.version, v] as const));
  const myCerts = new Set((mine?.certificates ?? []).map((c) => c.sessionId));
  const othersEpoch = new Map<number, number>();
  const lacking = new Map<string, { sessionId: string; operation: string; version: number }>();
  statuses.forEach((st, k) => {
    if (!st || k === position) return;
    for (const v of st.versions) othersEpoch.set(v.version, Math.max(othersEpoch.get(v.version) ?? 0, v.epoch));
    for (const c of st.certificates) {
      if (myCerts.has(c.sessionId) || lacking.has(c.sessionId)) continue;
      try {
        const cert = decodeCertificate(fromHex(c.certificate, 'certificate'));
        lacking.set(c.sessionId, { sessionId: c.sessionId, operation: cert.operation, version: cert.version });
      } catch {
        // Not decodable: the node it was handed to refused it, and the repair report says so.
      }
    }
  });
  const committees = currentCommittees(statuses);
  const behind = (version: number) => {
    // A node outside the version's current committee holds nothing of it to bring forward (it never
    // held it, or a reshare moved the key away from it): not behind.
    const committee = committees.get(version)?.nodes;
    if (committee !== undefined && !committee.includes(index)) return false;
    const held = myVersions.get(version);
    return held === undefined || held.epoch < (othersEpoch.get(version) ?? 0);
  };
  // A change this node still holds staged is waiting for its certificate, not lost.
  const needsReDeal = [...lacking.values()].filter((c) => behind(c.version) && mine?.staged?.sessionId !== c.sessionId).sort((a, b) => a.version - b.version);
  if (needsReDeal.length === 0) return undefined;
  const parts = [...new Set(needsReDeal.map((c) => c.version))].map((version) => {
    const held = myVersions.get(version);
    const sessions = needsReDeal.filter((c) => c.version === version).map((c) => `${c.operation} ${c.sessionId}`).join(', ');
    const theirs = `the others committed version ${version} at epoch ${othersEpoch.get(version) ?? 0} (sessions ${sessions})`;
    return held === undefined ? `node ${index} holds no version ${version} of key ${keyId}; ${theirs}` : `node ${index} holds key ${keyId} version ${version} at epoch ${held.epoch}; ${theirs}`;
  });
  return {
    finding: `${parts.join('; ')}: this node was restored from an older backup or lost data; its share must be re-dealt (resharing, issue 13)`,
    needsReDeal,
  };
}

/** How long what a request or a /ready probe taught about a node's liveness is trusted. */
const LIVENESS_TTL_MS = 5_000;
/** Deadline of one /ready probe of live-player selection. */
const PROBE_TIMEOUT_MS = 2_000;

function allPlayers(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

function assertSame(values: string[], what: string): void {
  if (new Set(values).size !== 1) throw new TesseraClientError('VERIFICATION_FAILED', `nodes returned different ${what}s`);
}
