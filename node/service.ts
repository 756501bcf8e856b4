/**
 * The node's operations: what an SDK-facing route asks for, checked, then run as a session.
 *
 * Every operation follows ../shared/design/sessions.md: check locally (tenant, key, state, parameters),
 * join the coordinator with the session digest, open the end-to-end channel (which also agrees on
 * the epoch), run the core protocol, persist only after every node confirmed the same public result,
 * and always wipe round state and channel keys, however the session ends.
 *
 * Every operation goes through one gate (node/governance/gate.ts): policy -> local checks (the key exists for
 * the caller's tenant, its state allows the operation: core/lifecycle.ts) -> audit 'started' -> the
 * session -> audit 'ok' / 'failed'. The tenant is always the caller's (from its API key); another
 * tenant's key answers NOT_FOUND exactly like a missing one. An operation that names no version uses
 * the newest active one, and every result says which version it used.
 *
 * Versions: keygen makes version 1; rotate makes the next version by DKG under the same key id and
 * retires the one it replaces; setState moves one version along the lifecycle (retire, archive,
 * activate, destroy) in a session every node (and so every operator's SDK) takes part in.
 * Scheduled rotation (node/governance/scheduler.ts) is the one session no SDK starts: every node's scheduler
 * joins the same session id, derived from the key version and a retry window, authorised by the
 * rotation period that every operator approved when the key was created.
 */
import { KEK_ROTATION_FAULT_POINTS } from './store/kek-rotation.js';
import { MembershipAdmin, type LiveMembership } from './governance/membership.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Logger } from 'pino';
import { bundleDigest, parseBundle, unwrapBundleShare, wrapBundleShare, wrappingKeyFingerprint, wrappingKeysForParties } from '../core/bundle.js';
import { equalBytes, framed, fromHex, i2osp, toHex, utf8ToBytes, zeroize } from '../core/bytes.js';
import { decapPartial, decodeEnc } from '../core/decap.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import type { IdentityKeyPair } from '../core/identity.js';
import { encodeMessage } from '../core/wire.js';
import { checkSessionParams, decapPartialBinding, sessionDigest, SESSION_ID_LENGTH, type Operation, type SessionParams } from '../core/session.js';
import { getKemSuite, getSigningSuite, getSuite, groupBackendNames, suiteScheme, type EcdsaSuite, type SigningSuite, type SuiteId } from '../core/suites.js';
import { derivationInfo, deriveKeyShare, formatDerivationPath, isDerivableSuite, keygenChainCode, parseDerivationPath } from '../core/derive.js';
import { MAX_ROTATION_PERIOD_MS, MIN_ROTATION_PERIOD_MS, assertStateAllows, assertTransition, isRotationPeriod, rotationStatus, type KeyOperation, type KeyState, type RotationAttemptLookup } from '../core/lifecycle.js';
import { OperationGate, asTesseraError } from './governance/gate.js';
import type { Principal } from './governance/tenants.js';
import { groupPublicKey } from '../core/sign.js';
import type { KeyShare, PublicKeyPackage } from '../core/types.js';
import { sealToReceiver, type WrappingKeyPair } from '../core/wrap.js';
import type {
  DecapsulateRequest,
  CommitStatusResponse,
  RepairRequest,
  RepairResponse,
  StagedActionRequest,
  StagedAttestResponse,
  StagedDropResponse,
  StagedReleaseResponse,
  DecapsulateResponse,
  DeclineRequest,
  DeclineResponse,
  ExportRequest,
  ExportResponse,
  ImportRequest,
  KeyInfo,
  KeygenRequest,
  NodeInfo,
  PublicKeyPackageJson,
  RefreshRequest,
  RefreshResponse,
  ReshareRequest,
  ReshareResponse,
  ReshareHandoffRequest,
  ReshareHandoffResponse,
  RotateRequest,
  RotateResponse,
  SetStateRequest,
  SignRequest,
  SignResponse,
  VerifyRequest,
  VerifyResponse,
  PresignaturesRequest,
  PresignaturesResponse,
  SignShareRequest,
  SignShareResponse,
  SignBatchRequest,
  SignBatchResponse,
} from '../contract/http.js';
import { PresignPools, type PresignScope } from './presign/pools.js';
import { ownRef, parseItem, signWithPresignatures, type PresignedItem } from './presign/requests.js';
import type { SignShareMsg } from '../core/messages.js';
import type { JoiningKeyMeta, KeyRecord as StoredKey, ShareStore, StagedEffect } from './store/storage.js';
import { resultDigest, stateResultDigest } from '../core/commit.js';
import { SessionEngine, type CoordinatorSessions } from './sessions/engine.js';
import { SessionsInFlight } from './sessions-in-flight.js';
import { statementOf } from './sessions/commit.js';
import { runReshare } from './sessions/reshare.js';
import { checkCommittee, isContiguous, isParty, partyIndices } from '../core/committee.js';
import { publicPackageDigest } from '../core/commit.js';
import type { Deviations } from './sessions/deviations.js';
import { burnedSetups } from './sessions/ecdsa-burn.js';
import { PairKeys } from './sessions/pair-keys.js';
import { TRANSITION_OPERATIONS } from '../core/lifecycle.js';
import { runDkg, runEcdsaSign, runRefresh, runSign, type DriverContext } from './sessions/protocols.js';
import { dealExportSubShares, openImportSubShares } from './sessions/failover.js';
import { runEcdsaPresign } from './sessions/protocols.js';
import { EcdsaPresignPools, type EcdsaPresignScope } from './presign/ecdsa-pools.js';
import { ECDSA_PRESIGNATURE_ID_LENGTH, ecdsaPresignatureIds, ecdsaRound3 } from '../core/ecdsa/session.js';
import { discardSignState } from '../core/ecdsa/dkls23.js';
import { checkPlayers, checkThreshold } from '../core/shamir.js';
import {
  MAX_ECDSA_PRESIGN_BATCH,
  type EcdsaPresignaturesRequest,
  type EcdsaPresignaturesResponse,
  type EcdsaSignShareRequest,
  type EcdsaSignShareResponse,
} from '../contract/http.js';

/** A stored key version with the epochs this node holds for it (committed, and staged if any). */
export interface KeyRecord {
  tenant: string;
  keyId: string;
  version: number;
  suite: SuiteId;
  exportable: boolean;
  state: KeyState;
  rotationPeriodMs?: number;
  committed: PublicKeyPackage;
  /** The BIP-32 chain code (core/derive.ts), when the version has one. Public. */
  chainCode?: Uint8Array;
}

/** The actor id scheduled rotations are audited under (no API key starts them). */
export const SCHEDULER_ACTOR = 'system.scheduler';

export { TRANSITION_OPERATIONS };

export type { CoordinatorSessions };

export interface NodeServiceOptions {
  index: number;
  identity: IdentityKeyPair;
  /** ML-KEM-768 key pair for import (public part published through GET /v1/node). */
  importKey: WrappingKeyPair;
  /**
   * Lowercase hex SHA-256 fingerprints (core/bundle.ts wrappingKeyFingerprint) of the wrapping keys
   * this node may export shares to. Undefined: any key; empty: none.
   */
  wrappingKeyAllowlist?: readonly string[];
  /** The cluster membership (node/governance/membership.ts): its map is what every session reads. */
  live: LiveMembership;
  store: ShareStore;
  link: CoordinatorSessions;
  logger: Logger;
  sessionTimeoutMs?: number;
  /**
   * Crash points for fault tests only (env TESSERA_FAULT_POINTS, read by node/main.ts): at a listed
   * point the process kills itself with SIGKILL, as a power cut would.
   */
  faultPoints?: ReadonlySet<string>;
  /** Test-only scripted misbehaviour (env TESSERA_TEST_DEVIATIONS, node/sessions/deviations.ts). */
  deviations?: Deviations;
  /** The node's pairwise channel keys; default: made here with the default rekey period. */
  pairKeys?: PairKeys;
  /** Policy, local checks and audit for every operation (node/governance/gate.ts). */
  gate: OperationGate;
  /**
   * Rotation settings (node/config.ts RotationConfig): the shortest period accepted, the warning window,
   * and the scheduler's attempt records (node/governance/scheduler.ts RotationAttempts), which key info reports
   * as rotation {status: 'overdue', lastError, ...} while a due rotation has not happened.
   */
  rotation?: { minPeriodMs?: number; warnBeforeMs?: number; attempts?: RotationAttemptLookup };
  /**
   * The in-memory presignature pools (node/presign/pools.ts) for one-round signing; made with the
   * defaults when not given. The service drops a key's pools on every change of its records
   * (ShareStore.onKeyChange).
   */
  presign?: PresignPools;
  /** How the node's store protects shares at rest (node/store/kek.ts atRestProtection): GET /v1/node `atRest`. */
  atRest?: NodeInfo['atRest'];
}

/** Test-only crash points: before a refresh stages, and at each step of the commit (node/sessions/commit.ts). */
export const FAULT_POINTS = [
  // KEK rotation (node/store/kek-rotation.ts): after each of its steps.
  ...KEK_ROTATION_FAULT_POINTS,
  'refresh-before-stage',
  // Reshare (node/sessions/reshare.ts): after the dealers dealt, after the confirmations, before staging.
  'reshare-after-deal',
  'reshare-after-confirm',
  'reshare-before-stage',
  // Inside the joint-Feldman rounds of keygen, rotate, refresh, import and export (node/sessions/protocols.ts).
  'rounds-after-round1',
  'rounds-after-echo',
  'rounds-after-confirm',
  'commit-after-stage',
  'commit-after-release',
  'commit-after-commit',
] as const;

export function packageToJson(p: PublicKeyPackage): PublicKeyPackageJson {
  return {
    suite: p.suite,
    threshold: p.threshold,
    parties: p.parties,
    epoch: p.epoch,
    commitments: p.commitments.map(toHex),
    verifyingShares: p.verifyingShares.map(toHex),
    ...(p.indices ? { indices: [...p.indices] } : {}),
  };
}

/** The inverse of packageToJson, shapes only (a reshare handoff checks the result against its certificate's digest). */
function packageFromJson(j: PublicKeyPackageJson): PublicKeyPackage {
  return {
    suite: getSuite(j.suite).id,
    threshold: j.threshold,
    parties: j.parties,
    epoch: j.epoch,
    commitments: j.commitments.map((c, k) => fromHex(c, `commitments[${k}]`)),
    verifyingShares: j.verifyingShares.map((c, k) => fromHex(c, `verifyingShares[${k}]`)),
    ...(j.indices ? { indices: checkCommittee(j.indices, j.threshold, 'publicPackage.indices') } : {}),
  };
}

function keyInfo(rec: StoredKey, now: number, settings?: NodeServiceOptions['rotation']): KeyInfo {
  const pkg = rec.publicKey;
  const suite = getSuite(pkg.suite);
  let rotation: KeyInfo['rotation'];
  if (rec.rotationPeriodMs !== undefined) {
    const { status, ...rest } = rotationStatus(rec, now, settings?.warnBeforeMs, settings?.attempts?.get(rec.tenant, rec.keyId, rec.version));
    rotation = { periodMs: rec.rotationPeriodMs, status, ...rest };
  }
  const root = rec.chainCode !== undefined && isDerivableSuite(pkg.suite) ? derivationInfo(pkg.suite, pkg, rec.chainCode) : undefined;
  return {
    keyId: rec.keyId,
    version: rec.version,
    suite: pkg.suite,
    scheme: suiteScheme(suite.id),
    publicKey: toHex(groupPublicKey(suite, pkg)),
    threshold: pkg.threshold,
    parties: pkg.parties,
    epoch: pkg.epoch,
    state: rec.state,
    exportable: rec.exportable,
    publicPackage: packageToJson(pkg),
    createdAt: rec.createdAt,
    ...(rotation ? { rotation } : {}),
    ...(root ? { chainCode: toHex(root.chainCode), ...(root.xpub !== undefined ? { xpub: root.xpub } : {}) } : {}),
  };
}

/**
 * The chain code a new version of a derivable suite is stored with (core/derive.ts keygenChainCode):
 * from the joint public result, the session and the run id every player contributed to.
 */
function newChainCode(pkg: PublicKeyPackage, session: Uint8Array, runId: Uint8Array): { chainCode?: Uint8Array } {
  return isDerivableSuite(pkg.suite) ? { chainCode: keygenChainCode(pkg, session, runId) } : {};
}

/** A sign request's path: canonical ("m/0/5"), or absent for the key itself ("m" or no path). */
function signPath(path: string | undefined, rec: KeyRecord): { path?: string; steps?: number[] } {
  if (path === undefined) return {};
  const steps = parseDerivationPath(path);
  if (steps.length === 0) return {};
  if (!isDerivableSuite(rec.suite)) throw new TesseraError(ErrorCode.BadParameters, `key ${rec.keyId} is a ${rec.suite} key: derivation paths are offered for secp256k1, bip340 and ed25519 keys`);
  if (rec.chainCode === undefined) throw new TesseraError(ErrorCode.BadState, `key ${rec.keyId} version ${rec.version} has no chain code (made before derivation existed); rotate it to derive child keys`);
  return { path: formatDerivationPath(steps), steps };
}

function notFound(keyId: string, version?: number): TesseraError {
  // The same answer whether the key is missing or belongs to another tenant.
  return new TesseraError(ErrorCode.NotFound, version !== undefined ? `key ${keyId} version ${version} not found` : `key ${keyId} not found`);
}

function parseSessionId(hex: string): Uint8Array {
  return fromHex(hex, 'sessionId', SESSION_ID_LENGTH);
}

export class NodeService {
  /** Keys (tenant/keyId) with a rotation or lifecycle session running on this node: one at a time. */
  private readonly changing = new Set<string>();

  private readonly engine: SessionEngine;
  /** The cluster membership's admin operations (node/governance/membership.ts). */
  readonly membership: MembershipAdmin;

  /** Presignature pools (one-round signing): in memory only, dropped on every change of their key. */
  readonly presign: PresignPools;

  /** Long-lived pairwise channel keys (node/sessions/pair-keys.ts): in memory only, rekeyed every period. */
  readonly pairKeys: PairKeys;

  /** Threshold ECDSA presignatures (node/presign/ecdsa-pools.ts): in memory only, dropped on every change of their key. */
  readonly ecdsaPresign: EcdsaPresignPools;

  /** The sessions this node runs now (the operator console lists them): every engine.run is tracked. */
  readonly sessionsInFlight = new SessionsInFlight();

  constructor(private readonly o: NodeServiceOptions) {
    this.presign =
      o.presign ??
      new PresignPools({ node: o.index, identity: o.identity, loadShare: (t, k, v) => o.store.getShare(t, k, v), logger: o.logger });
    // The one invalidation hook: every write of a key's records (every commit included) drops its pools.
    o.store.onKeyChange((tenant, keyId) => this.presign.invalidate(tenant, keyId));
    this.ecdsaPresign = new EcdsaPresignPools({ node: o.index });
    o.store.onKeyChange((tenant, keyId) => this.ecdsaPresign.invalidate(tenant, keyId));
    this.pairKeys = o.pairKeys ?? new PairKeys({ self: o.index });
    this.engine = new SessionEngine({
      index: o.index,
      identity: o.identity,
      membership: o.live.map,
      store: o.store,
      link: o.link,
      pairKeys: this.pairKeys,
      logger: o.logger,
      ...(o.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: o.sessionTimeoutMs } : {}),
      crashPoint: (name) => this.crashPoint(name as (typeof FAULT_POINTS)[number]),
      ...(o.deviations ? { deviations: o.deviations } : {}),
    });
    this.sessionsInFlight.instrument(this.engine);
    this.membership = new MembershipAdmin({
      index: o.index,
      live: o.live,
      engine: this.engine,
      store: o.store,
      gate: o.gate,
      pairKeys: this.pairKeys,
      announce: () => o.link.announceMembership?.(),
      logger: o.logger,
    });
  }

  /** At start: count (and log) the staged changes that await `tessera repair`. */
  resolveStagedAtStart(): Promise<{ waiting: number; released: number }> {
    return this.engine.resolveAtStart();
  }

  info(): NodeInfo {
    return {
      index: this.o.index,
      parties: this.o.live.parties,
      identityPublicKey: toHex(this.o.identity.publicKey),
      importPublicKey: toHex(this.o.importKey.publicKey),
      ready: this.o.link.connected,
      online: this.o.link.online(),
      groupBackends: groupBackendNames(),
      ...(this.o.atRest ? { atRest: this.o.atRest } : {}),
    };
  }

  /**
   * A version's public record (readable in every state: a destroyed version's public key stays for
   * verification). Without a version: the newest active one, or the newest if none is active.
   */
  async getKey(p: Principal, keyId: string, version?: number): Promise<KeyInfo> {
    const { store } = this.o;
    const rec =
      version !== undefined ? await store.get(p.tenant, keyId, version) : ((await store.latestActive(p.tenant, keyId)) ?? (await store.get(p.tenant, keyId)));
    if (!rec) throw notFound(keyId, version);
    return keyInfo(rec, Date.now(), this.o.rotation);
  }

  /** Every version of every key of the principal's tenant (public records), by keyId then version (ShareStore.list's order); optionally one state only. */
  async listKeys(p: Principal, state?: string): Promise<{ keys: KeyInfo[] }> {
    const now = Date.now();
    const records = await this.o.store.list(p.tenant);
    const keys = records.filter((r) => state === undefined || r.state === state).map((r) => keyInfo(r, now, this.o.rotation));
    return { keys };
  }

  async keygen(p: Principal, req: KeygenRequest): Promise<KeyInfo> {
    const session = parseSessionId(req.sessionId);
    const { tenant } = p;
    return this.o.gate.run(
      { principal: p, operation: 'keygen', authorize: 'policy', keyId: req.keyId, version: 1, session },
      async () => {
        const suite = getSuite(req.suite);
        const members = this.o.live.indices;
        if (req.threshold > members.length) {
          throw new TesseraError(ErrorCode.BadParameters, `threshold ${req.threshold} is above the node count ${members.length}`);
        }
        const min = this.o.rotation?.minPeriodMs ?? MIN_ROTATION_PERIOD_MS;
        if (req.rotationPeriodMs !== undefined && !isRotationPeriod(req.rotationPeriodMs, min)) {
          throw new TesseraError(ErrorCode.BadParameters, `rotationPeriodMs must be ${min}..${MAX_ROTATION_PERIOD_MS} ms`);
        }
        if (await this.o.store.get(tenant, req.keyId)) throw new TesseraError(ErrorCode.AlreadyExists, `key ${req.keyId} already exists`);
        const exportable = req.exportable ?? false;
        // Exportability and the rotation period are fixed here: in the digest, so every node and operator agreed.
        const params = this.params('keygen', tenant, req.keyId, 1, suite.id, req.threshold, members, [
          utf8ToBytes(exportable ? 'exportable' : 'non-exportable'),
          utf8ToBytes(req.rotationPeriodMs !== undefined ? `rotate every ${req.rotationPeriodMs} ms` : 'no rotation period'),
        ]);
        return { version: 1, suite, exportable, params };
      },
      async ({ suite, exportable, params }) => {
        const rotation = req.rotationPeriodMs !== undefined ? { rotationPeriodMs: req.rotationPeriodMs } : {};
        await this.engine.run({ session, params }, async (ctx) => {
          const key = await runDkg(ctx, suite.id, req.threshold);
          try {
            const digest = resultDigest({ kind: 'version', package: key.publicKey, exportable, ...rotation });
            await ctx.commit({
              statement: statementOf(session, 'keygen', tenant, req.keyId, 1, digest),
              effects: [{ kind: 'new-version', record: { tenant, keyId: req.keyId, version: 1, exportable, share: key, ...rotation, ...newChainCode(key.publicKey, session, ctx.runId) } }],
            });
          } finally {
            zeroize(key.secret.value, key.secret.pairwise);
          }
        });
        this.o.logger.info({ op: 'keygen', keyId: req.keyId, version: 1, suite: suite.id, session: toHex(session) }, 'key created');
        return this.getKey(p, req.keyId, 1);
      },
    );
  }

  async sign(p: Principal, keyId: string, req: SignRequest): Promise<SignResponse> {
    const session = parseSessionId(req.sessionId);
    return this.o.gate.run(
      { principal: p, operation: 'sign', authorize: 'policy', keyId, ...versionOf(req), session },
      async () => {
        const rec = await this.requireKey(p.tenant, keyId, req.version, 'sign');
        const suite = getSuite(rec.suite);
        if (suite.kind === 'sign') getSigningSuite(suite.id);
        else if (suite.kind !== 'ecdsa') throw new TesseraError(ErrorCode.UnknownSuite, `suite ${suite.id} cannot sign`);
        const message = fromHex(req.message, 'message');
        if (req.prehashed !== undefined && suite.kind !== 'ecdsa') {
          throw new TesseraError(ErrorCode.BadParameters, `prehashed: a ${suite.id} key signs the message itself; only threshold ECDSA keys (ecdsa-secp256k1, ecdsa-p256) sign a digest`);
        }
        const prehashed = req.prehashed === true;
        // ECDSA: the digest that is signed (SHA-256 of the message, or the message when prehashed,
        // checked to be 16..64 bytes here, before any session).
        const digest = suite.kind === 'ecdsa' ? suite.messageDigest(message, prehashed) : undefined;
        const { path, steps } = signPath(req.path, rec);
        // "prehashed" enters the digest only when set, so a FROST session's digest is unchanged.
        const payload = prehashed ? [message, utf8ToBytes('prehashed')] : [message];
        const params = this.params('sign', p.tenant, keyId, rec.version, suite.id, rec.committed.threshold, req.players, payload, path);
        // ECDSA: no session with a peer whose pairwise setup a failed check burned (node/sessions/ecdsa-burn.ts).
        if (suite.kind === 'ecdsa') await burnedSetups(this.o.store).refuse({ tenant: p.tenant, keyId, version: rec.version, epoch: rec.committed.epoch }, params.players, this.o.index);
        return { version: rec.version, rec, message, digest, params, steps };
      },
      async ({ rec, message, digest, params, steps }) => {
        const signed = await this.engine.run({ session, params, uses: usesShare(p.tenant, keyId, rec.version) }, async (ctx, key) => {
          // The child key (core/derive.ts): the public tweak added to this node's share and to every
          // verifying share, in a private copy wiped after signing; the stored share is untouched.
          const child = steps === undefined ? undefined : deriveKeyShare(key!, rec.chainCode!, steps);
          try {
            if (digest === undefined) return { signature: await runSign(ctx, child ?? key!, message) };
            const sig = await runEcdsaSign(ctx, child ?? key!, digest, {
              // A failed KOS15 / F_RVOLE check: those setups are not used again before a refresh.
              onSetupCheckFailed: (peers) => burnedSetups(this.o.store).burn({ tenant: p.tenant, keyId, version: rec.version, epoch: key!.publicKey.epoch }, peers, toHex(session)),
            });
            return { signature: sig.compact, der: toHex(sig.der), recoveryId: sig.recovery };
          } finally {
            if (child) zeroize(child.secret.value, child.secret.pairwise);
          }
        });
        this.o.logger.info({ op: 'sign', keyId, version: rec.version, session: toHex(session) }, 'signed');
        return { keyId, version: rec.version, ...signed, signature: toHex(signed.signature) };
      },
    );
  }

  /**
   * Presignatures (node/presign/pools.ts): hand out `count` of this node's nonce commitments for a key
   * version (the newest active one unless named), each once, in a batch signed with the node's identity.
   * No policy decision and no audit entry: a commitment signs nothing and reveals nothing; every
   * signature made with one is decided by the policy and audited (signShare, signBatch). The key must
   * be the caller's tenant's and in a state that allows signing.
   */
  async presignatures(p: Principal, keyId: string, req: PresignaturesRequest): Promise<PresignaturesResponse> {
    const failed = this.o.store.failure;
    if (failed) throw failed;
    const rec = await this.requireKey(p.tenant, keyId, req.version, 'sign');
    const suite = getSigningSuite(rec.suite);
    const scope: PresignScope = { tenant: p.tenant, keyId, version: rec.version, epoch: rec.committed.epoch, suite };
    const batch = await this.presign.issue(scope, req.count);
    return {
      tenant: p.tenant,
      keyId,
      version: rec.version,
      epoch: scope.epoch,
      suite: suite.id,
      node: this.o.index,
      poolId: toHex(batch.poolId),
      commitments: batch.commitments.map((c) => ({ index: c.index, hiding: toHex(c.hiding), binding: toHex(c.binding) })),
      signature: toHex(batch.signature),
    };
  }

  /**
   * One-round signing: this node's signature share over one message with a presigned commitment list.
   * Through the gate as 'sign' (policy, key checks, audit: the entry's session id is the presignature
   * used, core/presign.ts presignRef). Everything is checked before the nonce is touched; the share is
   * computed only after the nonce left its pool (node/presign/requests.ts).
   */
  async signShare(p: Principal, keyId: string, req: SignShareRequest): Promise<SignShareResponse> {
    const ref = ownRef(this.o.index, req.commitments);
    return this.o.gate.run(
      { principal: p, operation: 'sign', authorize: 'policy', keyId, version: req.version, ...(ref ? { session: ref } : {}), declineOnRefusal: false, local: true },
      () => this.preparePresigned(p, keyId, req.version, req.epoch, [req], req.path),
      async (prepared) => {
        const [signed] = await this.signPresigned(prepared);
        this.o.logger.debug({ op: 'sign', keyId, version: prepared.version, presigned: 1 }, 'signed from a presignature');
        return { keyId, version: prepared.version, epoch: prepared.scope.epoch, node: this.o.index, share: toHex(signed!.share), commitment: toHex(signed!.commitment!) };
      },
    );
  }

  /**
   * Signature shares over up to MAX_SIGN_BATCH messages with one key, each with its own presigned
   * commitment list: the policy decides every message and every message has its own audit entries
   * (node/governance/gate.ts runBatch). All or nothing: one bad item refuses the request before any
   * nonce is consumed. shares[i] is the share over items[i].
   */
  async signBatch(p: Principal, req: SignBatchRequest): Promise<SignBatchResponse> {
    const { keyId } = req;
    const refs = req.items.map((it) => ownRef(this.o.index, it.commitments));
    return this.o.gate.runBatch(
      { principal: p, operation: 'sign', authorize: 'policy', keyId, version: req.version, local: true },
      refs,
      () => this.preparePresigned(p, keyId, req.version, req.epoch, req.items),
      async (prepared) => {
        const shares = await this.signPresigned(prepared);
        this.o.logger.debug({ op: 'sign', keyId, version: prepared.version, presigned: shares.length }, 'signed a batch from presignatures');
        return {
          keyId,
          version: prepared.version,
          epoch: prepared.scope.epoch,
          node: this.o.index,
          shares: shares.map((s) => toHex(s.share)),
          commitments: shares.map((s) => toHex(s.commitment!)),
        };
      },
    );
  }

  /**
   * Threshold ECDSA presignatures (node/presign/ecdsa-pools.ts): a 'sign' session among `players` (the
   * policy decides it as a signing; every player's operator asks its node) that runs DKLs23's rounds
   * 1-2 and the message-free part of round 3 for `count` instances (runEcdsaPresign) and keeps this
   * node's presignatures in memory under ids every player derives alike. The session digest binds the
   * presigning tag and the count instead of a message, so it never equals a signing session's.
   */
  async ecdsaPresignatures(p: Principal, keyId: string, req: EcdsaPresignaturesRequest): Promise<EcdsaPresignaturesResponse> {
    const session = parseSessionId(req.sessionId);
    return this.o.gate.run(
      { principal: p, operation: 'sign', authorize: 'policy', keyId, ...versionOf(req), session },
      async () => {
        const rec = await this.requireKey(p.tenant, keyId, req.version, 'sign');
        const suite = getSuite(rec.suite);
        if (suite.kind !== 'ecdsa') {
          throw new TesseraError(ErrorCode.BadParameters, `key ${keyId} is a ${suite.id} key: ECDSA presignatures are for ecdsa-secp256k1 and ecdsa-p256 keys (FROST keys use /presignatures)`);
        }
        if (!Number.isSafeInteger(req.count) || req.count < 1 || req.count > MAX_ECDSA_PRESIGN_BATCH) {
          throw new TesseraError(ErrorCode.BadParameters, `count: expected an integer from 1 to ${MAX_ECDSA_PRESIGN_BATCH}`);
        }
        const params = this.params('sign', p.tenant, keyId, rec.version, suite.id, rec.committed.threshold, req.players, [ECDSA_PRESIGN_TAG, i2osp(req.count, 1)]);
        // No presigning with a peer whose pairwise setup a failed check burned (node/sessions/ecdsa-burn.ts).
        await burnedSetups(this.o.store).refuse({ tenant: p.tenant, keyId, version: rec.version, epoch: rec.committed.epoch }, params.players, this.o.index);
        // Read before the session: a change of the key while it runs makes add() refuse its presignatures.
        return { version: rec.version, params, generation: this.ecdsaPresign.generation(p.tenant, keyId) };
      },
      async ({ version, params, generation }) => {
        const made = await this.engine.run({ session, params, uses: usesShare(p.tenant, keyId, version) }, async (ctx, key) => {
          const presigs = await runEcdsaPresign(ctx, key!, req.count, {
            onSetupCheckFailed: (peers) => burnedSetups(this.o.store).burn({ tenant: p.tenant, keyId, version, epoch: key!.publicKey.epoch }, peers, toHex(session)),
          });
          const ids = ecdsaPresignatureIds(ctx.session, ctx.runId, req.count);
          const scope: EcdsaPresignScope = { tenant: p.tenant, keyId, version, epoch: key!.publicKey.epoch, players: params.players };
          const list = presigs.map((presig, k) => ({ id: toHex(ids[k]!), R: toHex(presig.R) }));
          this.ecdsaPresign.add(scope, generation, presigs.map((presig, k) => ({ id: ids[k]!, presig })));
          return { epoch: scope.epoch, list };
        });
        this.o.logger.info({ op: 'sign', keyId, version, session: toHex(session), presignatures: made.list.length }, 'made ECDSA presignatures');
        return { keyId, version, epoch: made.epoch, node: this.o.index, players: [...params.players], presignatures: made.list };
      },
    );
  }

  /**
   * Threshold ECDSA one-round signing: this node's DKLs23 round-3 broadcast (u_i, w_i) for one message
   * with one presignature. Through the gate as 'sign' (policy, key state, audit under the presignature
   * id). Everything is checked first (key, suite, epoch, message and digest, that the id is this node's
   * for exactly this key version, epoch and signer set: ecdsa-pools.ts check), consuming nothing; then
   * the entry leaves its pool in one synchronous step, and only then is (u_i, w_i) computed
   * (ecdsaRound3 wipes the presignature). A second request for the id: PRESIGNATURE_UNAVAILABLE.
   */
  async ecdsaSignShare(p: Principal, keyId: string, req: EcdsaSignShareRequest): Promise<EcdsaSignShareResponse> {
    let ref: Uint8Array | undefined;
    try {
      ref = fromHex(req.presignatureId, 'presignatureId', ECDSA_PRESIGNATURE_ID_LENGTH);
    } catch {
      ref = undefined; // refused with its reason in prepare
    }
    return this.o.gate.run(
      { principal: p, operation: 'sign', authorize: 'policy', keyId, version: req.version, ...(ref ? { session: ref } : {}), declineOnRefusal: false, local: true },
      async () => {
        const rec = await this.requireKey(p.tenant, keyId, req.version, 'sign');
        const suite = getSuite(rec.suite);
        if (suite.kind !== 'ecdsa') {
          throw new TesseraError(ErrorCode.BadParameters, `key ${keyId} is a ${suite.id} key: ECDSA presignatures are for ecdsa-secp256k1 and ecdsa-p256 keys (FROST keys use /sign-share)`);
        }
        const id = fromHex(req.presignatureId, 'presignatureId', ECDSA_PRESIGNATURE_ID_LENGTH);
        const digest = suite.messageDigest(fromHex(req.message, 'message'), req.prehashed === true);
        const pkg = rec.committed;
        const players = checkPlayers(req.players, partyIndices(pkg), pkg.threshold);
        if (!players.includes(this.o.index)) throw new TesseraError(ErrorCode.BadParameters, `this node (${this.o.index}) is not among the players`);
        if (pkg.epoch !== req.epoch) {
          throw new TesseraError(
            ErrorCode.PresignatureUnavailable,
            `epoch mismatch: key ${keyId} version ${rec.version} is at epoch ${pkg.epoch} on node ${this.o.index}, the request names epoch ${req.epoch}; make new presignatures`,
          );
        }
        const scope: EcdsaPresignScope = { tenant: p.tenant, keyId, version: rec.version, epoch: pkg.epoch, players };
        this.ecdsaPresign.check(scope, id);
        return { version: rec.version, scope, id, digest };
      },
      async ({ version, scope, id, digest }) => {
        // Out of the pool first (synchronous: a concurrent request for the same id finds nothing), then the share.
        const presig = this.ecdsaPresign.take(scope, id);
        let share: ReturnType<typeof ecdsaRound3>;
        try {
          share = ecdsaRound3(presig, digest);
        } finally {
          discardSignState(presig); // wiped by ecdsaRound3 already; again is harmless
        }
        this.o.logger.debug({ op: 'sign', keyId, version, presigned: 1 }, 'signed from an ECDSA presignature');
        return { keyId, version, epoch: scope.epoch, node: this.o.index, presignatureId: toHex(id), u: toHex(share.broadcast.u), w: toHex(share.broadcast.w) };
      },
    );
  }

  /** Every check of a presigned request, in order, consuming nothing (node/presign/requests.ts). */
  private async preparePresigned(
    p: Principal,
    keyId: string,
    version: number,
    epoch: number,
    items: readonly SignShareRequest[] | SignBatchRequest['items'],
    path?: string,
  ): Promise<{ version: number; scope: PresignScope; items: PresignedItem[]; child?: { chainCode: Uint8Array; steps: number[] } }> {
    const rec = await this.requireKey(p.tenant, keyId, version, 'sign');
    const suite = getSigningSuite(rec.suite);
    const { steps } = signPath(path, rec);
    const pkg = rec.committed;
    if (pkg.epoch !== epoch) {
      throw new TesseraError(
        ErrorCode.PresignatureUnavailable,
        `epoch mismatch: key ${keyId} version ${version} is at epoch ${pkg.epoch} on node ${this.o.index}, the request names epoch ${epoch}; fetch new presignatures`,
      );
    }
    const scope: PresignScope = { tenant: p.tenant, keyId, version, epoch, suite };
    const parsed = items.map((it, k) => parseItem(this.presign, scope, pkg, this.o.index, it, items.length > 1 ? `items[${k}].` : ''));
    this.presign.check(scope, parsed.map((i) => i.use));
    return { version, scope, items: parsed, ...(steps !== undefined ? { child: { chainCode: rec.chainCode!, steps } } : {}) };
  }

  /** Load the share, then sign: the nonces leave their pools before any share is computed. */
  private async signPresigned(prepared: { scope: PresignScope; items: PresignedItem[]; child?: { chainCode: Uint8Array; steps: number[] } }): Promise<SignShareMsg[]> {
    const { tenant, keyId, version, epoch } = prepared.scope;
    const key = await this.o.store.getShare(tenant, keyId, version);
    if (!key) throw notFound(keyId, version);
    let child: KeyShare | undefined;
    try {
      if (key.secret.epoch !== epoch || key.publicKey.epoch !== epoch) {
        throw new TesseraError(ErrorCode.PresignatureUnavailable, `epoch mismatch: key ${keyId} version ${version} changed to epoch ${key.publicKey.epoch} while signing; fetch new presignatures`);
      }
      // A child key (core/derive.ts): the public tweak added to a private copy of the share, wiped below.
      if (prepared.child) child = deriveKeyShare(key, prepared.child.chainCode, prepared.child.steps);
      return signWithPresignatures(this.presign, prepared.scope, child ?? key, prepared.items);
    } finally {
      zeroize(key.secret.value, child?.secret.value);
    }
  }

  /** Verify a signature under one version: a local check (no session), allowed while active or retired. */
  async verify(p: Principal, keyId: string, req: VerifyRequest): Promise<VerifyResponse> {
    return this.o.gate.run(
      { principal: p, operation: 'verify', authorize: 'policy', keyId, ...versionOf(req) },
      async () => {
        const rec = await this.requireKey(p.tenant, keyId, req.version, 'verify');
        const suite = getSuite(rec.suite);
        if (suite.kind === 'kem') getSigningSuite(suite.id); // "cannot sign"
        if (req.prehashed !== undefined && suite.kind !== 'ecdsa') {
          throw new TesseraError(ErrorCode.BadParameters, `prehashed: a ${suite.id} signature is over the message itself; only threshold ECDSA keys sign a digest`);
        }
        return { version: rec.version, suite: suite as SigningSuite | EcdsaSuite, publicKey: groupPublicKey(suite, rec.committed) };
      },
      async ({ version, suite, publicKey }) => {
        const signature = fromHex(req.signature, 'signature');
        const message = fromHex(req.message, 'message');
        let valid = false;
        try {
          valid = (suite.kind === 'ecdsa' ? suite.verify(signature, message, publicKey, { prehashed: req.prehashed === true }) : suite.verify(signature, message, publicKey)) === true;
        } catch {
          valid = false; // a malformed signature is simply not a valid one
        }
        return { keyId, version, valid };
      },
    );
  }

  /**
   * Threshold decapsulation in one round (issue 10 item 4): no coordinator session, no relay. Asked by
   * its own operator's SDK, this node checks (policy, key state, `enc` a valid point via the suite's
   * encToPoint, the SDK's player list well formed with this node in it), computes its partial
   * D_i = share_i·E with a DLEQ proof bound to the SDK's session id and its own index (core/decap.ts
   * decapPartial), HPKE-wraps it to the SDK's receiver key with decapPartialBinding(session id, key,
   * version, node index) as associated data, and answers with it. The SDK asks its t players in
   * parallel, unwraps and combines (core/decap.ts decapCombine checks every proof and names culprits).
   *
   * Why "every required operator asked with the same parameters" still holds without a session:
   * - A partial alone reveals nothing about the share or the shared secret: D_i is share_i·E with a
   *   zero-knowledge proof of equal discrete logs; the DH value skR·E, and so the shared secret, needs
   *   t partials on the same E, interpolated (RFC 9591 §4.2 Lagrange coefficients).
   * - Each partial is released only on its own operator's authenticated request, which that operator's
   *   approve hook saw in full (enc, receiver key, players, session id), and only wrapped to the
   *   receiver key named in it: nobody without that receiver's private key can read it.
   * - So the secret of `enc` is obtained only by whoever holds receiver keys for t partials of that enc,
   *   each of which its operator approved sending to that receiver. An honest SDK combines only partials
   *   opened with its own fresh receiver key, bound (AEAD associated data and DLEQ context) to its own
   *   session id, key version and each sender's index, for the `enc` it asked about: partials released
   *   for any other request do not open or do not verify there.
   * - A repeated request is not refused (no session id is claimed): it only yields another wrapping of
   *   the same partial to the same receiver, which its operator approved already.
   * Compared with the session path this gives up only the up-front agreement of the t nodes; a node whose
   * operator did not ask releases nothing, and the SDK fails without t partials.
   */
  async decapsulate(p: Principal, keyId: string, req: DecapsulateRequest): Promise<DecapsulateResponse> {
    const session = parseSessionId(req.sessionId);
    return this.o.gate.run(
      // Not a coordinator session: a refusal has nothing to decline there (the session id is the SDK's binding nonce).
      { principal: p, operation: 'decapsulate', authorize: 'policy', keyId, ...versionOf(req), session, declineOnRefusal: false, local: true },
      async () => {
        const rec = await this.requireKey(p.tenant, keyId, req.version, 'decapsulate');
        const suite = getKemSuite(rec.suite);
        const enc = fromHex(req.enc, 'enc', suite.encLength);
        // RFC 9180 §4.1 DeserializePublicKey with the suite's validity checks: a bad point fails here, before any share is read.
        // Decoded once: decapPartial takes the decoded point (the hpke-x25519 map is most of its cost).
        const decodedEnc = decodeEnc(suite, enc);
        const receiver = fromHex(req.receiverPublicKey, 'receiverPublicKey');
        // The SDK picks which t (or more) nodes it asks: the list must be well formed and name this node.
        this.params('decapsulate', p.tenant, keyId, rec.version, suite.id, rec.committed.threshold, req.players, [enc, receiver]);
        return { version: rec.version, rec, suite, decodedEnc, receiver };
      },
      async ({ rec, suite, decodedEnc, receiver }) => {
        await this.refuseReleasedDestroy(p.tenant, keyId, rec.version);
        const key = await this.o.store.getShare(p.tenant, keyId, rec.version);
        if (!key) throw notFound(keyId, rec.version);
        let plaintext: Uint8Array | undefined;
        try {
          const partial = decapPartial(suite, key, decodedEnc, session);
          plaintext = encodeMessage('decap/partial', suite.id, partial);
          const wrapped = await sealToReceiver(receiver, plaintext, decapPartialBinding(session, keyId, rec.version, this.o.index));
          this.o.logger.info({ op: 'decapsulate', keyId, version: rec.version, session: toHex(session) }, 'partial decapsulation wrapped');
          return {
            keyId,
            version: rec.version,
            index: this.o.index,
            wrappedPartial: { kem: wrapped.kem, enc: toHex(wrapped.enc), ciphertext: toHex(wrapped.ciphertext) },
            publicPackage: packageToJson(key.publicKey),
          };
        } finally {
          zeroize(key.secret.value);
          if (plaintext) zeroize(plaintext);
        }
      },
    );
  }

  /**
   * A destroyed key never decrypts again: once this node released its vote to destroy a version, a
   * certificate may exist at a peer, so the share is not used any more (as the session engine refuses).
   */
  private async refuseReleasedDestroy(tenant: string, keyId: string, version: number): Promise<void> {
    const staged = await this.o.store.getStaged(tenant, keyId);
    if (staged?.released && staged.operation === 'destroy' && staged.version === version) {
      throw new TesseraError(
        ErrorCode.BadState,
        `key ${keyId} version ${version} is being destroyed on node ${this.o.index} (session ${toHex(staged.session)} awaits its certificate): its share is not used; run tessera repair --key-id ${keyId}`,
      );
    }
  }


  async refresh(p: Principal, keyId: string, req: RefreshRequest): Promise<RefreshResponse> {
    const session = parseSessionId(req.sessionId);
    const { tenant } = p;
    return this.o.gate.run(
      { principal: p, operation: 'refresh', authorize: 'policy', keyId, ...versionOf(req), session },
      async () => {
        const rec = await this.requireKey(tenant, keyId, req.version, 'refresh');
        const params = this.params('refresh', tenant, keyId, rec.version, rec.suite, rec.committed.threshold, partyIndices(rec.committed), []);
        return { version: rec.version, rec, params };
      },
      async ({ rec, params }) => {
        const epoch = await this.engine.run(
          { session, params, uses: usesShare(tenant, keyId, rec.version) },
          async (ctx, key) => {
            const next = await runRefresh(ctx, key!);
            try {
              this.crashPoint('refresh-before-stage');
              const digest = resultDigest({ kind: 'epoch', package: next.publicKey });
              await ctx.commit({
                statement: statementOf(session, 'refresh', tenant, keyId, rec.version, digest),
                effects: [{ kind: 'new-epoch', version: rec.version, share: next }],
              });
              return next.publicKey.epoch;
            } finally {
              zeroize(next.secret.value, next.secret.pairwise);
            }
          },
        );
        this.o.logger.info({ op: 'refresh', keyId, version: rec.version, epoch, session: toHex(session) }, 'shares refreshed');
        return { keyId, version: rec.version, epoch };
      },
    );
  }

  /**
   * Export: every node re-randomises its share with the others (a refresh that is never committed, so
   * the cluster keeps its shares and no exported share equals a retained one) and returns its new share
   * wrapped to the wrapping key for its index, with the new public package; the SDK assembles the
   * bundle. With `reshare` (a destination of another size, issue 13), each node instead deals its new
   * share to destination nodes 1..n' and seals sub-share j to wrapping key j (node/sessions/failover.ts);
   * the SDK assembles a version 2 bundle. Refused before joining when the key is not exportable or a
   * wrapping key is not allowed.
   */
  async exportKey(p: Principal, keyId: string, req: ExportRequest): Promise<ExportResponse> {
    const session = parseSessionId(req.sessionId);
    return this.o.gate.run(
      { principal: p, operation: 'export', authorize: 'policy', keyId, ...versionOf(req), session },
      async () => {
        const rec = await this.requireKey(p.tenant, keyId, req.version, 'export');
        if (!rec.exportable) {
          throw new TesseraError(ErrorCode.PolicyDenied, `key ${keyId} is not exportable (exportability is fixed when a key is created or imported)`);
        }
        const given = req.wrappingKeys.map((k, i) => fromHex(k, `wrappingKeys[${i}]`));
        const target = req.reshare;
        if (target !== undefined) checkThreshold(target.threshold, target.parties);
        const keys = wrappingKeysForParties(given, target?.parties ?? rec.committed.parties);
        this.checkWrappingKeyAllowlist(given);
        // The payload digest binds every wrapping key, in order, and the destination's size: all nodes
        // and operators saw the same.
        const payload = target === undefined ? given : [...given, framed(utf8ToBytes('reshare'), i2osp(target.threshold, 1), i2osp(target.parties, 1))];
        const params = this.params('export', p.tenant, keyId, rec.version, rec.suite, rec.committed.threshold, partyIndices(rec.committed), payload);
        return { version: rec.version, rec, keys, target, params };
      },
      async ({ rec, keys, target, params }) => {
        const result = await this.engine.run({ session, params, uses: usesShare(p.tenant, keyId, rec.version) }, async (ctx, key) => {
          const next = await runRefresh(ctx, key!, { forExport: true });
          try {
            const publicPackage = packageToJson(next.publicKey);
            if (target !== undefined) return { dealt: await dealExportSubShares(next, { keyId, keyVersion: rec.version }, target, keys), publicPackage };
            return { wrappedShare: await wrapBundleShare(next, { keyId, keyVersion: rec.version }, keys[this.o.index - 1]!), publicPackage };
          } finally {
            zeroize(next.secret.value);
          }
        });
        this.o.logger.info(
          target === undefined
            ? { op: 'export', keyId, version: rec.version, wrappingKey: result.wrappedShare?.wrappingKeyFingerprint, session: toHex(session) }
            : { op: 'export', keyId, version: rec.version, reshare: `${target.threshold}-of-${target.parties}`, session: toHex(session) },
          target === undefined ? 're-randomised share exported, wrapped' : 're-randomised share dealt to the destination nodes, sealed',
        );
        return { keyId, version: rec.version, index: this.o.index, ...result };
      },
    );
  }

  /**
   * Import: each node unwraps the bundle's share for its own index with its import key and checks it
   * against its verifying share (the bundle's public part was checked in the exponent by parseBundle);
   * a node whose checks fail fails the session before sending anything, so the refresh completes
   * nowhere. Then the shares are re-randomised, every node confirms it is ready to store, and only then
   * does each node store its new share under the key id (the bundle's unless given). A version 2 bundle
   * (dealt for this cluster's size, issue 13) instead has each node open its sub-shares from every
   * dealer and combine them (node/sessions/failover.ts), which names a bad dealer; the rest is the same.
   */
  async importKey(p: Principal, req: ImportRequest): Promise<KeyInfo> {
    const session = parseSessionId(req.sessionId);
    const { tenant } = p;
    // The key id the policy decides on (the request's, else the bundle's; both schema-checked ids).
    const policyKeyId = req.keyId ?? req.bundle.keyId;
    return this.o.gate.run(
      { principal: p, operation: 'import', authorize: 'policy', keyId: policyKeyId, version: req.bundle.keyVersion, session },
      async () => {
        const bundle = parseBundle(req.bundle);
        const pkg = bundle.package;
        // A bundle carries a sharing for one size; another size needs a new export (which reshares).
        const again = "; export the key again with this cluster's import-keys file (`tessera import-key --json`), which deals it for this cluster's size";
        const members = this.o.live.indices;
        if (pkg.parties !== members.length) {
          throw new TesseraError(
            ErrorCode.BadParameters,
            `the bundle's key is shared among ${pkg.parties} parties but this cluster has ${members.length} nodes (the bundle carries a ${pkg.threshold}-of-${pkg.parties} sharing)${again}`,
          );
        }
        if (!isContiguous(members)) {
          // A bundle's shares are for nodes 1..n; a cluster whose membership has gaps imports the key
          // by a reshare after importing it elsewhere, not here.
          throw new TesseraError(ErrorCode.BadParameters, `a bundle imports into a cluster of nodes 1..${pkg.parties}; this cluster's nodes are ${members.join(',')}`);
        }
        if (req.threshold !== undefined && req.threshold !== pkg.threshold) {
          throw new TesseraError(ErrorCode.BadParameters, `the bundle's threshold is ${pkg.threshold} but the destination's is ${req.threshold}${again}`);
        }
        const keyId = req.keyId ?? bundle.keyId;
        if (await this.o.store.get(tenant, keyId)) throw new TesseraError(ErrorCode.AlreadyExists, `key ${keyId} already exists`);
        // This node's share (version 1), or its sub-share from each dealer (version 2), must be wrapped to its import key.
        const own = bundle.resharing
          ? bundle.resharing.dealers.map((d) => ({ what: `dealer ${d.index}'s sub-share`, entry: d.subShares[this.o.index - 1]! }))
          : [{ what: 'share', entry: bundle.wrappedShares.find((w) => w.index === this.o.index)! }];
        const mine = wrappingKeyFingerprint(this.o.importKey.publicKey);
        for (const { what, entry } of own) {
          if (!equalBytes(entry.wrappingKeyFingerprint, mine)) {
            throw new TesseraError(
              ErrorCode.BadInput,
              `the bundle's ${what} for node ${this.o.index} is wrapped to key ${toHex(entry.wrappingKeyFingerprint).slice(0, 16)}…, not to this node's import key ${toHex(mine).slice(0, 16)}…`,
            );
          }
        }
        const exportable = req.exportable ?? false;
        const params = this.params('import', tenant, keyId, bundle.keyVersion, pkg.suite, pkg.threshold, members, [
          bundleDigest(bundle),
          utf8ToBytes(exportable ? 'exportable' : 'non-exportable'),
        ]);
        return { version: bundle.keyVersion, bundle, keyId, exportable, params };
      },
      async ({ bundle, keyId, exportable, params }) => {
        const epoch = await this.engine.run({ session, params }, async (ctx) => {
          const share = bundle.resharing
            ? await openImportSubShares(bundle, this.o.importKey, this.o.index)
            : await unwrapBundleShare(bundle, this.o.importKey, this.o.index);
          let next: KeyShare;
          try {
            next = await runRefresh(ctx, { publicKey: bundle.package, secret: share });
          } finally {
            zeroize(share.value);
          }
          try {
            const digest = resultDigest({ kind: 'version', package: next.publicKey, exportable });
            await ctx.commit({
              statement: statementOf(session, 'import', tenant, keyId, bundle.keyVersion, digest),
              effects: [{ kind: 'new-version', record: { tenant, keyId, version: bundle.keyVersion, exportable, share: next, ...newChainCode(next.publicKey, session, ctx.runId) } }],
            });
            return next.publicKey.epoch;
          } finally {
            zeroize(next.secret.value, next.secret.pairwise);
          }
        });
        this.o.logger.info(
          { op: 'import', keyId, sourceKeyId: bundle.keyId, version: bundle.keyVersion, suite: bundle.package.suite, epoch, exportable, session: toHex(session) },
          'key imported and re-randomised',
        );
        return this.getKey(p, keyId, bundle.keyVersion);
      },
    );
  }

  /**
   * Rotate: a new version of the key by DKG under the same key id (same suite, threshold, exportability
   * and rotation period), then the version it replaces (the newest active one unless named) is retired.
   * A session of all n nodes, so every operator's SDK approves it.
   */
  async rotate(p: Principal, keyId: string, req: RotateRequest): Promise<RotateResponse> {
    return this.rotateAs(p, keyId, parseSessionId(req.sessionId), req.version);
  }

  /**
   * The scheduler's rotation of a version that is due (node/governance/scheduler.ts): the same session as rotate(),
   * under the system actor, with the session id every node's scheduler derives for this version and window.
   */
  async rotateScheduled(tenant: string, keyId: string, version: number, session: Uint8Array, timeoutMs: number): Promise<RotateResponse> {
    return this.rotateAs({ tenant, apiKeyId: SCHEDULER_ACTOR, role: 'tenant' }, keyId, session, version, timeoutMs);
  }

  private async rotateAs(p: Principal, keyId: string, session: Uint8Array, version: number | undefined, timeoutMs?: number): Promise<RotateResponse> {
    const { tenant } = p;
    let locked: string | undefined;
    try {
      return await this.o.gate.run(
        { principal: p, operation: 'rotate', authorize: 'policy', keyId, ...(version !== undefined ? { version } : {}), session },
        async () => {
          const old = await this.requireKey(tenant, keyId, version, 'rotate');
          const next = await this.o.store.nextVersion(tenant, keyId);
          const params = this.params('rotate', tenant, keyId, next, old.suite, old.committed.threshold, partyIndices(old.committed), [
            i2osp(old.version, 4),
            utf8ToBytes(old.rotationPeriodMs !== undefined ? `rotate every ${old.rotationPeriodMs} ms` : 'no rotation period'),
          ]);
          locked = this.lockKey(tenant, keyId);
          return { version: old.version, old, next, params };
        },
        async ({ old, next, params }) => {
          const rotation = old.rotationPeriodMs !== undefined ? { rotationPeriodMs: old.rotationPeriodMs } : {};
          await this.engine.run({ session, params, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }, async (ctx) => {
            const key = await runDkg(ctx, old.suite, old.committed.threshold);
            const rotatedAt = Date.now();
            try {
              const digest = resultDigest({ kind: 'version', package: key.publicKey, exportable: old.exportable, ...rotation, retires: old.version });
              await ctx.commit({
                statement: statementOf(session, 'rotate', tenant, keyId, next, digest),
                effects: [
                  {
                    kind: 'new-version',
                    record: { tenant, keyId, version: next, exportable: old.exportable, share: key, createdAt: rotatedAt, ...rotation, ...newChainCode(key.publicKey, session, ctx.runId) },
                  },
                  { kind: 'state', version: old.version, state: 'retired', rotatedAt },
                ],
              });
            } finally {
              zeroize(key.secret.value, key.secret.pairwise);
            }
          });
          const info = await this.getKey(p, keyId, next);
          this.o.logger.info({ op: 'rotate', keyId, version: next, previousVersion: old.version, actor: p.apiKeyId, session: toHex(session) }, 'key rotated');
          return { keyId, version: next, previousVersion: old.version, suite: info.suite, publicKey: info.publicKey };
        },
      );
    } finally {
      if (locked) this.changing.delete(locked);
    }
  }

  /**
   * Move one version along the lifecycle (core/lifecycle.ts): retire, archive, activate or destroy.
   * Every node checks the transition before joining; once all have joined, each confirms it is ready
   * and only then changes its copy. Destroying erases this node's share (ShareStore.destroy: overwrite,
   * tombstone, compaction) and keeps the public key readable.
   */
  async setState(p: Principal, keyId: string, req: SetStateRequest): Promise<KeyInfo> {
    const session = parseSessionId(req.sessionId);
    const { tenant } = p;
    const target = req.state;
    const operation = TRANSITION_OPERATIONS[target];
    let locked: string | undefined;
    try {
      return await this.o.gate.run(
        { principal: p, operation, authorize: 'policy', keyId, version: req.version, session },
        async () => {
          const rec = await this.o.store.get(tenant, keyId, req.version);
          if (!rec) throw notFound(keyId, req.version);
          assertTransition(rec.state, target, { keyId, version: req.version });
          const params = this.params(operation, tenant, keyId, req.version, rec.suite, rec.threshold, partyIndices(rec.publicKey), [utf8ToBytes(target)]);
          locked = this.lockKey(tenant, keyId);
          return { version: req.version, params };
        },
        async ({ params }) => {
          const rec = await this.engine.run({ session, params }, async (ctx) => {
            const { records } = await ctx.commit({
              statement: statementOf(session, operation, tenant, keyId, req.version, stateResultDigest(target)),
              effects: [target === 'destroyed' ? { kind: 'destroy', version: req.version } : { kind: 'state', version: req.version, state: target }],
            });
            return records[0]!;
          });
          this.o.logger.info({ op: operation, keyId, version: req.version, state: rec.state, session: toHex(session) }, 'key version state changed');
          return keyInfo(rec, Date.now(), this.o.rotation);
        },
      );
    } finally {
      if (locked) this.changing.delete(locked);
    }
  }

  /**
   * The operator refused a session on one of its keys: make the coordinator abort it for every other
   * node now. An operation like any other (node/governance/gate.ts): the key must be the caller's tenant's
   * (another tenant's key answers NOT_FOUND exactly like a missing one, and nothing reaches the
   * coordinator), the policy must allow 'decline', and it is audited. Keygen and import name a key
   * that does not exist yet: in the caller's own namespace, which is all its tenant can name.
   * The coordinator applies it only to a session this node is a player of and has not joined.
   */
  async decline(p: Principal, req: DeclineRequest): Promise<DeclineResponse> {
    const session = parseSessionId(req.sessionId);
    return this.o.gate.run(
      // A refused decline must not decline the session after all: declineOnRefusal false.
      { principal: p, operation: 'decline', authorize: 'policy', keyId: req.keyId, ...versionOf(req), session, declineOnRefusal: false },
      async () => {
        const creates = req.operation === 'keygen' || req.operation === 'import';
        if (!creates && !(await this.o.store.get(p.tenant, req.keyId, req.version))) throw notFound(req.keyId, req.version);
        return versionOf(req);
      },
      async () => {
        if (!this.o.link.connected) throw new TesseraError(ErrorCode.Unavailable, 'node is not connected to the coordinator');
        this.o.gate.declineSession(p, req.keyId, session, 'declined by the operator');
        this.o.logger.info({ op: 'decline', keyId: req.keyId, declined: req.operation, actor: p.apiKeyId, session: toHex(session) }, 'session declined by the operator');
        return { sessionId: toHex(session), declined: true };
      },
    );
  }

  /**
   * What this node holds of a key's commits, for `tessera repair` (sdk/client.ts Cluster.repair): its
   * staged change, its versions with the session that certified each, and its certificates. Public
   * data only. Another tenant's key answers NOT_FOUND exactly like a missing one.
   */
  async commitStatus(p: Principal, keyId: string): Promise<CommitStatusResponse> {
    const { store } = this.o;
    const versions = await store.versions(p.tenant, keyId);
    const staged = await store.getStaged(p.tenant, keyId);
    if (versions.length === 0 && !staged) throw notFound(keyId);
    const certificates = await store.listCertificates(p.tenant, keyId);
    return {
      keyId,
      ...(staged
        ? {
            staged: {
              sessionId: toHex(staged.session),
              tenant: p.tenant,
              operation: staged.operation,
              version: staged.version,
              resultDigest: toHex(staged.resultDigest),
              released: staged.released,
              ...(staged.voters ? { voters: [...staged.voters] } : {}),
            },
          }
        : {}),
      versions: versions.map((v) => ({
        version: v.version,
        epoch: v.epoch,
        state: v.state,
        ...(v.certSession ? { certSessionId: toHex(v.certSession) } : {}),
        nodes: [...partyIndices(v.publicKey)],
      })),
      certificates: certificates.map((c) => ({ sessionId: toHex(c.session), certificate: toHex(c.certificate) })),
    };
  }

  /**
   * Reshare (issue 13): move a key version to a new committee and threshold, same public key. A session
   * of the dealers (old holders, at least the old threshold) and the new committee
   * (node/sessions/reshare.ts, core/reshare.ts), committed with every player's vote. After the commit a
   * dealer that left the committee has erased its share and record; an old holder that was not a player
   * erases on the handoff (reshareHandoff). A node joining the committee holds no record of the key
   * before: it takes the session's suite and version from the request, and the key from the dealers.
   */
  async reshare(p: Principal, keyId: string, req: ReshareRequest): Promise<ReshareResponse> {
    const session = parseSessionId(req.sessionId);
    const { tenant } = p;
    return this.o.gate.run(
      { principal: p, operation: 'reshare', authorize: 'policy', keyId, version: req.version, session },
      async () => {
        const suite = getSuite(req.suite);
        const committee = checkCommittee(req.nodes, req.threshold, 'the new committee');
        const dealers = checkCommittee(req.dealers, undefined, 'the dealers');
        const strangers = [...committee, ...dealers].filter((i) => !this.o.live.map.has(i));
        if (strangers.length > 0) throw new TesseraError(ErrorCode.BadParameters, `nodes ${[...new Set(strangers)].join(',')} are not members of this cluster`);
        const oldPackageDigest = fromHex(req.oldPackageDigest, 'oldPackageDigest');
        const stored = await this.o.store.get(tenant, keyId, req.version);
        let held: { rec: KeyRecord; createdAt: number } | undefined;
        if (stored) {
          const rec = await this.requireKey(tenant, keyId, req.version, 'reshare');
          if (rec.suite !== suite.id) throw new TesseraError(ErrorCode.BadParameters, `key ${keyId} is a ${rec.suite} key, not ${suite.id}`);
          const old = rec.committed;
          if (!equalBytes(publicPackageDigest(old), oldPackageDigest)) {
            throw new TesseraError(
              ErrorCode.EpochMismatch,
              `node ${this.o.index} holds epoch ${old.epoch} of ${keyId} version ${req.version}, not the state the reshare names; run tessera repair --key-id ${keyId}`,
            );
          }
          const outside = dealers.filter((d) => !isParty(old, d));
          if (outside.length > 0) throw new TesseraError(ErrorCode.BadParameters, `dealers ${outside.join(',')} hold no share of ${keyId} version ${req.version}`);
          if (dealers.length < old.threshold) throw new TesseraError(ErrorCode.BadParameters, `a reshare needs at least ${old.threshold} dealers (the old threshold), got ${dealers.length}`);
          held = { rec, createdAt: stored.createdAt };
        } else if (dealers.includes(this.o.index)) {
          throw notFound(keyId, req.version);
        }
        const players = [...new Set([...dealers, ...committee])].sort((a, b) => a - b);
        // The payload binds the new threshold, committee and dealers and the old package: every player
        // and every operator approved exactly this move of exactly this key state.
        const params = this.params('reshare', tenant, keyId, req.version, suite.id, req.threshold, players, [
          i2osp(req.threshold, 1),
          Uint8Array.from(committee),
          Uint8Array.from(dealers),
          oldPackageDigest,
        ]);
        return { version: req.version, held, committee, dealers, oldPackageDigest, params };
      },
      async ({ held, committee, dealers, oldPackageDigest, params }) => {
        const version = req.version;
        const self = this.o.index;
        const out = await this.engine.run({ session, params }, async (ctx) => {
          let key: KeyShare | undefined;
          let outcome: Awaited<ReturnType<typeof runReshare>> | undefined;
          try {
            if (held) {
              await this.refuseReleasedDestroy(tenant, keyId, version);
              key = await this.o.store.getShare(tenant, keyId, version);
              if (!key) throw notFound(keyId, version);
            }
            const meta: JoiningKeyMeta | undefined = held && {
              exportable: held.rec.exportable,
              state: held.rec.state as JoiningKeyMeta['state'],
              createdAt: held.createdAt,
              ...(held.rec.rotationPeriodMs !== undefined ? { rotationPeriodMs: held.rec.rotationPeriodMs } : {}),
              ...(held.rec.chainCode !== undefined ? { chainCode: held.rec.chainCode } : {}),
            };
            outcome = await runReshare(ctx, {
              suite: params.suite,
              dealers,
              target: { threshold: req.threshold, indices: committee },
              oldPackageDigest,
              ...(key && meta ? { held: { key, meta } } : {}),
            });
            this.crashPoint('reshare-before-stage');
            const effects: StagedEffect[] = outcome.key
              ? [{ kind: 'reshare', version, share: outcome.key, ...(held ? {} : { joining: outcome.meta }) }]
              : [{ kind: 'leave', version }];
            const committed = await ctx.commit({
              statement: statementOf(session, 'reshare', tenant, keyId, version, resultDigest({ kind: 'epoch', package: outcome.package })),
              effects,
            });
            return { package: outcome.package, certificate: committed.certificate };
          } finally {
            if (key) zeroize(key.secret.value, key.secret.pairwise);
            if (outcome?.key) zeroize(outcome.key.secret.value, outcome.key.secret.pairwise);
          }
        });
        const inNew = committee.includes(self);
        const role: ReshareResponse['role'] = dealers.includes(self) ? (inNew ? 'dealer+receiver' : 'dealer') : 'receiver';
        this.o.logger.info(
          { op: 'reshare', keyId, version, epoch: out.package.epoch, threshold: req.threshold, committee, dealers, role, session: toHex(session) },
          inNew ? 'key reshared: this node holds a share of the new committee' : 'key reshared away: this node erased its share',
        );
        return {
          keyId,
          version,
          node: self,
          epoch: out.package.epoch,
          threshold: out.package.threshold,
          indices: [...partyIndices(out.package)],
          publicPackage: packageToJson(out.package),
          certificate: toHex(out.certificate),
          role,
        };
      },
    );
  }

  /**
   * After a reshare, an old holder that was not a player is handed its certificate and the new package
   * (by the SDK, or by an operator): checked (node/sessions/commit.ts applyReshareHandoff), then this
   * node erases its share and record if the new committee leaves it out. Through the gate as 'repair'.
   */
  async reshareHandoff(p: Principal, keyId: string, req: ReshareHandoffRequest): Promise<ReshareHandoffResponse> {
    const encoded = fromHex(req.certificate, 'certificate');
    const pkg = packageFromJson(req.publicPackage);
    return this.o.gate.run(
      { principal: p, operation: 'repair', authorize: 'policy', keyId },
      async () => ({}),
      async () => {
        const { outcome, certificate } = await this.engine.reshareHandoff(encoded, pkg, { tenant: p.tenant, keyId });
        this.o.logger.info({ op: 'reshare-handoff', keyId, version: certificate.version, outcome, session: toHex(certificate.session) }, 'reshare handed off');
        return { keyId, version: certificate.version, node: this.o.index, outcome };
      },
    );
  }

  /**
   * Finish a commit this node missed, from its certificate (verified against the membership's identity
   * keys: whoever hands it over is not trusted). Through the gate as operation 'repair': the tenant
   * owns the key, policy allows it, and it is audited.
   */
  async repair(p: Principal, keyId: string, req: RepairRequest): Promise<RepairResponse> {
    const encoded = fromHex(req.certificate, 'certificate');
    return this.o.gate.run(
      { principal: p, operation: 'repair', authorize: 'policy', keyId },
      async () => {
        const versions = await this.o.store.versions(p.tenant, keyId);
        if (versions.length === 0 && !(await this.o.store.getStaged(p.tenant, keyId))) throw notFound(keyId);
        return {};
      },
      async () => {
        const { outcome, certificate } = await this.engine.applyCertificate(encoded, { tenant: p.tenant, keyId });
        this.o.logger.info({ op: 'repair', keyId, version: certificate.version, certified: certificate.operation, outcome, session: toHex(certificate.session) }, 'commit finished from its certificate');
        return { keyId, sessionId: toHex(certificate.session), operation: certificate.operation, version: certificate.version, outcome };
      },
    );
  }

  /**
   * Repair of a staged change (sdk/client.ts Cluster.repair), through the gate as 'repair':
   * - attest: this node's signed attestation that it staged the change of the session;
   * - release: given every node's attestation for the same result, release this node's stored vote
   *   (the rule a session follows: a vote leaves a node only once every node staged);
   * - drop: drop the staged change if this node never released its vote (refused otherwise).
   */
  async stagedAction(
    p: Principal,
    keyId: string,
    action: 'attest' | 'release' | 'drop',
    req: StagedActionRequest,
  ): Promise<StagedAttestResponse | StagedReleaseResponse | StagedDropResponse> {
    const session = parseSessionId(req.sessionId);
    return this.o.gate.run(
      { principal: p, operation: 'repair', authorize: 'policy', keyId, session },
      async () => {
        if (!(await this.o.store.getStaged(p.tenant, keyId)) && (await this.o.store.versions(p.tenant, keyId)).length === 0) throw notFound(keyId);
        return {};
      },
      async () => {
        const sessionId = toHex(session);
        if (action === 'attest') {
          const attestation = await this.engine.attestStaged(p.tenant, keyId, session);
          return { sessionId, node: this.o.index, attestation: toHex(attestation) };
        }
        if (action === 'release') {
          const list = req.attestations ?? [];
          const attestations = new Map<number, Uint8Array>();
          for (const a of list) {
            if (attestations.has(a.node)) throw new TesseraError(ErrorCode.BadInput, `attestations: node ${a.node} is listed twice`);
            attestations.set(a.node, fromHex(a.attestation, `attestations[${a.node}]`));
          }
          const vote = await this.engine.releaseVote(p.tenant, keyId, session, attestations);
          this.o.logger.info({ op: 'repair', keyId, session: sessionId }, 'vote released: every node attested it staged the same result');
          return { sessionId, node: this.o.index, vote: toHex(vote) };
        }
        const dropped = await this.o.store.dropStaged(p.tenant, keyId, session);
        if (dropped) this.o.logger.warn({ op: 'repair', keyId, session: sessionId }, 'staged change dropped: its vote was never released and not every node staged it');
        return { sessionId, dropped };
      },
    );
  }

  // -------------------------------------------------------------------------------------------

  /** One rotation or state change per key at a time on this node (BAD_STATE otherwise). */
  private lockKey(tenant: string, keyId: string): string {
    const k = `${tenant}/${keyId}`;
    if (this.changing.has(k)) {
      throw new TesseraError(ErrorCode.BadState, `key ${keyId} is already being rotated or changed on node ${this.o.index}; try again when that finished`);
    }
    this.changing.add(k);
    return k;
  }

  private checkWrappingKeyAllowlist(keys: readonly Uint8Array[]): void {
    const allow = this.o.wrappingKeyAllowlist;
    if (allow === undefined) return;
    for (const k of keys) {
      const fingerprint = toHex(wrappingKeyFingerprint(k));
      if (!allow.includes(fingerprint)) {
        throw new TesseraError(ErrorCode.PolicyDenied, `wrapping key ${fingerprint.slice(0, 16)}… is not on node ${this.o.index}'s wrapping-key allowlist`);
      }
    }
  }

  private crashPoint(point: (typeof FAULT_POINTS)[number]): void {
    if (this.o.faultPoints?.has(point)) {
      this.o.logger.warn({ point }, 'fault injection: crashing');
      process.kill(process.pid, 'SIGKILL');
    }
  }

  /**
   * The version an operation on a key uses, checked against the lifecycle table: the named version,
   * else the newest active one (BAD_STATE when the key has versions but none is active). Another
   * tenant's key answers NOT_FOUND exactly like a missing one.
   */
  private async requireKey(tenant: string, keyId: string, version: number | undefined, operation: KeyOperation): Promise<KeyRecord> {
    const { store } = this.o;
    let committed: StoredKey | undefined;
    if (version !== undefined) {
      committed = await store.get(tenant, keyId, version);
      if (!committed) throw notFound(keyId, version);
    } else {
      committed = await store.latestActive(tenant, keyId);
      if (!committed) {
        if (await store.get(tenant, keyId)) throw new TesseraError(ErrorCode.BadState, `key ${keyId} has no active version; name the version to use`);
        throw notFound(keyId);
      }
    }
    assertStateAllows(committed.state, operation, { keyId, version: committed.version });
    return {
      tenant,
      keyId,
      version: committed.version,
      suite: committed.suite,
      exportable: committed.exportable,
      state: committed.state,
      ...(committed.rotationPeriodMs !== undefined ? { rotationPeriodMs: committed.rotationPeriodMs } : {}),
      committed: committed.publicKey,
      ...(committed.chainCode !== undefined ? { chainCode: committed.chainCode } : {}),
    };
  }

  private params(
    operation: Operation,
    tenant: string,
    keyId: string,
    version: number,
    suite: SuiteId,
    threshold: number,
    /** Every key operation but keygen, import and reshare: the key's committee, or t or more of it (sign, decapsulate). */
    players: readonly number[],
    payload: Uint8Array[],
    path?: string,
  ): SessionParams {
    const p = checkSessionParams({
      operation,
      tenant,
      keyId,
      version,
      suite,
      threshold,
      // The cluster's nodes: players are node indices, and the digest binds exactly which take part.
      parties: this.o.live.parties,
      players,
      payloadDigest: sha256(framed(utf8ToBytes(operation), ...payload)),
      ...(path !== undefined ? { path } : {}),
    });
    if (!p.players.includes(this.o.index)) {
      throw new TesseraError(ErrorCode.BadParameters, `this node (${this.o.index}) is not among the players`);
    }
    return p;
  }
}

/** What an ECDSA presigning session binds in its payload digest instead of a message (with the count). */
const ECDSA_PRESIGN_TAG = utf8ToBytes('tessera/ecdsa-presign/v1');

/** The version a request names, as a field to spread (absent when it names none). */
function versionOf(req: { version?: number }): { version?: number } {
  return req.version !== undefined ? { version: req.version } : {};
}

/** A session on an existing key version whose share this node loads after the epochs are agreed. */
function usesShare(tenant: string, keyId: string, version: number) {
  return { tenant, keyId, version, loadShare: true };
}

function allNodes(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
