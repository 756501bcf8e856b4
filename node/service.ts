/**
 * The node's operations: what an SDK-facing route asks for, checked, then run as a session.
 *
 * Every operation follows ../shared/design/sessions.md: check locally (tenant, key, state, parameters),
 * join the coordinator with the session digest, open the end-to-end channel (which also agrees on
 * the epoch), run the core protocol, persist only after every node confirmed the same public result,
 * and always wipe round state and channel keys, however the session ends.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { Logger } from 'pino';
import { bundleDigest, parseBundle, unwrapBundleShare, wrapBundleShare, wrappingKeyFingerprint, wrappingKeysForParties } from '../core/bundle.js';
import { equalBytes, framed, fromHex, i2osp, toHex, utf8ToBytes, zeroize } from '../core/bytes.js';
import { decapPartial } from '../core/decap.js';
import { ErrorCode, TesseraError, isTesseraError } from '../core/errors.js';
import type { IdentityKeyPair } from '../core/identity.js';
import { encodeMessage } from '../core/wire.js';
import { checkSessionParams, decapPartialBinding, sessionDigest, SESSION_ID_LENGTH, type Operation, type SessionParams } from '../core/session.js';
import { getKemSuite, getSigningSuite, getSuite, type SuiteId } from '../core/suites.js';
import { groupPublicKey } from '../core/sign.js';
import type { KeyShare, PublicKeyPackage } from '../core/types.js';
import { sealToReceiver, type WrappingKeyPair } from '../core/wrap.js';
import type {
  DecapsulateRequest,
  DecapsulateResponse,
  ExportRequest,
  ExportResponse,
  ImportRequest,
  KeyInfo,
  KeygenRequest,
  NodeInfo,
  PublicKeyPackageJson,
  RefreshRequest,
  RefreshResponse,
  SignRequest,
  SignResponse,
} from './api-types.js';
import { SessionChannel, type RelayLink } from './channel.js';
import type { ShareStore } from './storage.js';
import { chooseEpoch, decodeHeld, encodeHeld, packageDigest, type HeldEpochs } from './epochs.js';
import { runDkg, runRefresh, runSign, type DriverContext } from './protocols.js';

/** A stored key version with the epochs this node holds for it (committed, and staged if any). */
export interface KeyRecord {
  tenant: string;
  keyId: string;
  version: number;
  suite: SuiteId;
  exportable: boolean;
  state: string;
  committed: PublicKeyPackage;
  pending?: PublicKeyPackage;
}

export interface CoordinatorSessions extends RelayLink {
  /** Join with the digest; resolves when the coordinator starts the session, rejects on abort. */
  join(session: Uint8Array, digest: Uint8Array, players: number[], timeoutMs?: number): Promise<unknown>;
  done(session: Uint8Array): void;
  fail(session: Uint8Array, code: string, message: string, culprits: number[]): void;
  online(): number[];
  readonly connected: boolean;
}

export interface NodeServiceOptions {
  index: number;
  parties: number;
  identity: IdentityKeyPair;
  /** ML-KEM-768 key pair for import (public part published through GET /v1/node). */
  importKey: WrappingKeyPair;
  /**
   * Lowercase hex SHA-256 fingerprints (core/bundle.ts wrappingKeyFingerprint) of the wrapping keys
   * this node may export shares to. Undefined: any key; empty: none.
   */
  wrappingKeyAllowlist?: readonly string[];
  membership: ReadonlyMap<number, Uint8Array>;
  store: ShareStore;
  link: CoordinatorSessions;
  logger: Logger;
  sessionTimeoutMs?: number;
  /**
   * Crash points for fault tests only (env TESSERA_FAULT_POINTS, read by node/main.ts): at a listed
   * point the process kills itself with SIGKILL, as a power cut would.
   */
  faultPoints?: ReadonlySet<string>;
}

export const FAULT_POINTS = ['refresh-before-stage', 'refresh-after-stage', 'refresh-before-commit'] as const;

export function packageToJson(p: PublicKeyPackage): PublicKeyPackageJson {
  return {
    suite: p.suite,
    threshold: p.threshold,
    parties: p.parties,
    epoch: p.epoch,
    commitments: p.commitments.map(toHex),
    verifyingShares: p.verifyingShares.map(toHex),
  };
}

function keyInfo(rec: KeyRecord): KeyInfo {
  const pkg = rec.committed;
  const suite = getSuite(pkg.suite);
  return {
    keyId: rec.keyId,
    version: rec.version,
    suite: pkg.suite,
    publicKey: toHex(groupPublicKey(suite, pkg)),
    threshold: pkg.threshold,
    parties: pkg.parties,
    epoch: pkg.epoch,
    state: rec.state,
    exportable: rec.exportable,
    publicPackage: packageToJson(pkg),
  };
}

function parseSessionId(hex: string): Uint8Array {
  return fromHex(hex, 'sessionId', SESSION_ID_LENGTH);
}

export class NodeService {
  constructor(private readonly o: NodeServiceOptions) {}

  info(): NodeInfo {
    return {
      index: this.o.index,
      parties: this.o.parties,
      identityPublicKey: toHex(this.o.identity.publicKey),
      importPublicKey: toHex(this.o.importKey.publicKey),
      ready: this.o.link.connected,
      online: this.o.link.online(),
    };
  }

  async getKey(tenant: string, keyId: string, version?: number): Promise<KeyInfo> {
    return keyInfo(await this.requireKey(tenant, keyId, version));
  }

  async keygen(tenant: string, req: KeygenRequest): Promise<KeyInfo> {
    const suite = getSuite(req.suite);
    const session = parseSessionId(req.sessionId);
    if (req.threshold > this.o.parties) {
      throw new TesseraError(ErrorCode.BadParameters, `threshold ${req.threshold} is above the node count ${this.o.parties}`);
    }
    if (await this.o.store.get(tenant, req.keyId)) throw new TesseraError(ErrorCode.AlreadyExists, `key ${req.keyId} already exists`);
    const exportable = req.exportable ?? false;
    const params = this.params('keygen', tenant, req.keyId, 1, suite.id, req.threshold, allNodes(this.o.parties), [
      utf8ToBytes(exportable ? 'exportable' : 'non-exportable'),
    ]);
    const key = await this.run(session, params, undefined, (ctx) => runDkg(ctx, suite.id, req.threshold, this.o.parties));
    try {
      await this.o.store.put({ tenant, keyId: req.keyId, version: 1, exportable, share: key });
    } finally {
      zeroize(key.secret.value);
    }
    this.o.logger.info({ op: 'keygen', keyId: req.keyId, suite: suite.id, session: toHex(session) }, 'key created');
    return this.getKey(tenant, req.keyId, 1);
  }

  async sign(tenant: string, keyId: string, req: SignRequest): Promise<SignResponse> {
    const session = parseSessionId(req.sessionId);
    const rec = await this.requireKey(tenant, keyId, req.version);
    const suite = getSigningSuite(rec.suite);
    const message = fromHex(req.message, 'message');
    const params = this.params('sign', tenant, keyId, rec.version, suite.id, rec.committed.threshold, req.players, [message]);
    const signature = await this.run(session, params, rec, async (ctx, key) => runSign(ctx, key!, message));
    this.o.logger.info({ op: 'sign', keyId, version: rec.version, session: toHex(session) }, 'signed');
    return { keyId, version: rec.version, signature: toHex(signature) };
  }

  async decapsulate(tenant: string, keyId: string, req: DecapsulateRequest): Promise<DecapsulateResponse> {
    const session = parseSessionId(req.sessionId);
    const rec = await this.requireKey(tenant, keyId, req.version);
    const suite = getKemSuite(rec.suite);
    const enc = fromHex(req.enc, 'enc', suite.encLength);
    // Check enc locally before joining (sessions.md step 3): a bad point fails here, not inside a session.
    suite.encToPoint(enc);
    const receiver = fromHex(req.receiverPublicKey, 'receiverPublicKey');
    const params = this.params('decapsulate', tenant, keyId, rec.version, suite.id, rec.committed.threshold, req.players, [enc, receiver]);
    let used: PublicKeyPackage | undefined;
    const wrapped = await this.run(session, params, rec, async (ctx, key) => {
      used = key!.publicKey;
      const partial = decapPartial(suite, key!, enc, session);
      const plaintext = encodeMessage('decap/partial', suite.id, partial);
      return sealToReceiver(receiver, plaintext, decapPartialBinding(session, keyId, rec.version, this.o.index));
    });
    this.o.logger.info({ op: 'decapsulate', keyId, version: rec.version, session: toHex(session) }, 'partial decapsulation wrapped');
    return {
      keyId,
      version: rec.version,
      index: this.o.index,
      wrappedPartial: { kem: wrapped.kem, enc: toHex(wrapped.enc), ciphertext: toHex(wrapped.ciphertext) },
      publicPackage: packageToJson(used!),
    };
  }

  async refresh(tenant: string, keyId: string, req: RefreshRequest): Promise<RefreshResponse> {
    const session = parseSessionId(req.sessionId);
    const rec = await this.requireKey(tenant, keyId, req.version);
    const params = this.params('refresh', tenant, keyId, rec.version, rec.suite, rec.committed.threshold, allNodes(this.o.parties), []);
    const epoch = await this.run(session, params, rec, async (ctx, key) => {
      const next = await runRefresh(ctx, key!);
      try {
        // Two-phase commit (node/epochs.ts): stage, exchange acknowledgements, then commit.
        this.crashPoint('refresh-before-stage');
        await this.o.store.stagePending(tenant, keyId, rec.version, next);
        this.crashPoint('refresh-after-stage');
        ctx.channel.broadcast('refresh/staged', utf8ToBytes('staged'));
        await ctx.channel.receiveAll('refresh/staged');
        this.crashPoint('refresh-before-commit');
        await this.o.store.commitPending(tenant, keyId, rec.version);
        return next.publicKey.epoch;
      } finally {
        zeroize(next.secret.value);
      }
    });
    this.o.logger.info({ op: 'refresh', keyId, version: rec.version, epoch, session: toHex(session) }, 'shares refreshed');
    return { keyId, version: rec.version, epoch };
  }

  /**
   * Export: every node re-randomises its share with the others (a refresh that is never committed, so
   * the cluster keeps its shares and no exported share equals a retained one) and returns its new share
   * wrapped to the wrapping key for its index, with the new public package; the SDK assembles the
   * bundle. Refused before joining when the key is not exportable or a wrapping key is not allowed.
   */
  async exportKey(tenant: string, keyId: string, req: ExportRequest): Promise<ExportResponse> {
    const session = parseSessionId(req.sessionId);
    const { rec, recipient, params } = await this.beforeJoin(session, async () => {
      const rec = await this.requireKey(tenant, keyId, req.version);
      if (!rec.exportable) {
        throw new TesseraError(ErrorCode.PolicyDenied, `key ${keyId} is not exportable (exportability is fixed when a key is created or imported)`);
      }
      const given = req.wrappingKeys.map((k, i) => fromHex(k, `wrappingKeys[${i}]`));
      const keys = wrappingKeysForParties(given, rec.committed.parties);
      this.checkWrappingKeyAllowlist(given);
      // The payload digest binds every wrapping key, in order: all nodes and operators saw the same.
      const params = this.params('export', tenant, keyId, rec.version, rec.suite, rec.committed.threshold, allNodes(this.o.parties), given);
      return { rec, recipient: keys[this.o.index - 1]!, params };
    });
    const result = await this.run(session, params, rec, async (ctx, key) => {
      const next = await runRefresh(ctx, key!);
      try {
        const wrappedShare = await wrapBundleShare(next, { keyId, keyVersion: rec.version }, recipient);
        return { wrappedShare, publicPackage: packageToJson(next.publicKey) };
      } finally {
        zeroize(next.secret.value);
      }
    });
    this.o.logger.info(
      { op: 'export', keyId, version: rec.version, wrappingKey: result.wrappedShare.wrappingKeyFingerprint, session: toHex(session) },
      're-randomised share exported, wrapped',
    );
    return { keyId, version: rec.version, index: this.o.index, ...result };
  }

  /**
   * Import: each node unwraps the bundle's share for its own index with its import key and checks it
   * against its verifying share (the bundle's public part was checked in the exponent by parseBundle);
   * a node whose checks fail fails the session before sending anything, so the refresh completes
   * nowhere. Then the shares are re-randomised, every node confirms it is ready to store, and only then
   * does each node store its new share under the key id (the bundle's unless given).
   */
  async importKey(tenant: string, req: ImportRequest): Promise<KeyInfo> {
    const session = parseSessionId(req.sessionId);
    const { bundle, keyId, exportable, params } = await this.beforeJoin(session, async () => {
      const bundle = parseBundle(req.bundle);
      const pkg = bundle.package;
      if (pkg.parties !== this.o.parties) {
        throw new TesseraError(
          ErrorCode.BadParameters,
          `the bundle's key is shared among ${pkg.parties} parties but this cluster has ${this.o.parties} nodes; threshold and party count must equal the source's (resharing is not supported)`,
        );
      }
      if (req.threshold !== undefined && req.threshold !== pkg.threshold) {
        throw new TesseraError(
          ErrorCode.BadParameters,
          `the bundle's threshold is ${pkg.threshold} but the destination's is ${req.threshold}; threshold and party count must equal the source's (resharing is not supported)`,
        );
      }
      const keyId = req.keyId ?? bundle.keyId;
      if (await this.o.store.get(tenant, keyId)) throw new TesseraError(ErrorCode.AlreadyExists, `key ${keyId} already exists`);
      const own = bundle.wrappedShares.find((w) => w.index === this.o.index)!;
      const mine = wrappingKeyFingerprint(this.o.importKey.publicKey);
      if (!equalBytes(own.wrappingKeyFingerprint, mine)) {
        throw new TesseraError(
          ErrorCode.BadInput,
          `the bundle's share for node ${this.o.index} is wrapped to key ${toHex(own.wrappingKeyFingerprint).slice(0, 16)}…, not to this node's import key ${toHex(mine).slice(0, 16)}…`,
        );
      }
      const exportable = req.exportable ?? false;
      const params = this.params('import', tenant, keyId, bundle.keyVersion, pkg.suite, pkg.threshold, allNodes(this.o.parties), [
        bundleDigest(bundle),
        utf8ToBytes(exportable ? 'exportable' : 'non-exportable'),
      ]);
      return { bundle, keyId, exportable, params };
    });
    const epoch = await this.run(session, params, undefined, async (ctx) => {
      const share = await unwrapBundleShare(bundle, this.o.importKey, this.o.index);
      let next: KeyShare;
      try {
        next = await runRefresh(ctx, { publicKey: bundle.package, secret: share });
      } finally {
        zeroize(share.value);
      }
      try {
        if (await this.o.store.get(tenant, keyId)) throw new TesseraError(ErrorCode.AlreadyExists, `key ${keyId} already exists`);
        ctx.channel.broadcast('import/ready', utf8ToBytes('ready'));
        await ctx.channel.receiveAll('import/ready');
        await this.o.store.put({ tenant, keyId, version: bundle.keyVersion, exportable, share: next });
        return next.publicKey.epoch;
      } finally {
        zeroize(next.secret.value);
      }
    });
    this.o.logger.info(
      { op: 'import', keyId, sourceKeyId: bundle.keyId, version: bundle.keyVersion, suite: bundle.package.suite, epoch, exportable, session: toHex(session) },
      'key imported and re-randomised',
    );
    return this.getKey(tenant, keyId, bundle.keyVersion);
  }

  /** The operator refused this session: make the coordinator abort it for every other node now. */
  decline(sessionIdHex: string): { sessionId: string; declined: boolean } {
    const session = parseSessionId(sessionIdHex);
    if (!this.o.link.connected) throw new TesseraError(ErrorCode.Unavailable, 'node is not connected to the coordinator');
    this.o.link.fail(session, 'POLICY_DENIED', 'declined by the operator', []);
    this.o.logger.info({ op: 'decline', session: toHex(session) }, 'session declined by the operator');
    return { sessionId: toHex(session), declined: true };
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Checks a node makes before joining. If one fails, the node declines the session at the coordinator
   * (as a refusing operator does), so the nodes that already joined abort at once instead of waiting
   * for the deadline; the caller gets this node's own error.
   */
  private async beforeJoin<T>(session: Uint8Array, checks: () => Promise<T>): Promise<T> {
    try {
      return await checks();
    } catch (e) {
      const err = asTesseraError(e);
      if (this.o.link.connected) this.o.link.fail(session, 'POLICY_DENIED', err.message, []);
      throw err;
    }
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

  private async requireKey(tenant: string, keyId: string, version?: number): Promise<KeyRecord> {
    const committed = await this.o.store.get(tenant, keyId, version);
    // Another tenant's key answers exactly like a missing one.
    if (!committed) throw new TesseraError(ErrorCode.NotFound, version ? `key ${keyId} version ${version} not found` : `key ${keyId} not found`);
    const pending = await this.o.store.getPending(tenant, keyId, committed.version);
    return {
      tenant,
      keyId,
      version: committed.version,
      suite: committed.suite,
      exportable: committed.exportable,
      state: committed.state,
      committed: committed.publicKey,
      ...(pending && pending.epoch > committed.epoch ? { pending: pending.publicKey } : {}),
    };
  }

  private params(
    operation: Operation,
    tenant: string,
    keyId: string,
    version: number,
    suite: SuiteId,
    threshold: number,
    players: readonly number[],
    payload: Uint8Array[],
  ): SessionParams {
    const p = checkSessionParams({
      operation,
      tenant,
      keyId,
      version,
      suite,
      threshold,
      parties: this.o.parties,
      players,
      payloadDigest: sha256(framed(utf8ToBytes(operation), ...payload)),
    });
    if (!p.players.includes(this.o.index)) {
      throw new TesseraError(ErrorCode.BadParameters, `this node (${this.o.index}) is not among the players`);
    }
    return p;
  }

  /**
   * Join, open the channel (agreeing on the epoch), run `body`, report done or fail. The share for
   * the agreed epoch is loaded only after the session started and is wiped when it ends.
   */
  private async run<T>(
    session: Uint8Array,
    params: SessionParams,
    rec: KeyRecord | undefined,
    body: (ctx: DriverContext, key?: KeyShare) => Promise<T>,
  ): Promise<T> {
    const { link } = this.o;
    if (!link.connected) throw new TesseraError(ErrorCode.Unavailable, 'node is not connected to the coordinator');
    const digest = sessionDigest(session, params);
    const players = [...params.players];
    await link.join(session, digest, players, this.o.sessionTimeoutMs);
    const channel = new SessionChannel({
      session,
      self: this.o.index,
      players,
      identity: this.o.identity,
      membership: this.o.membership,
      link,
    });
    let key: KeyShare | undefined;
    try {
      const held: HeldEpochs | undefined = rec && {
        committed: { epoch: rec.committed.epoch, digest: packageDigest(rec.committed) },
        ...(rec.pending ? { pending: { epoch: rec.pending.epoch, digest: packageDigest(rec.pending) } } : {}),
      };
      const infos = await channel.open(encodeHeld(held));
      if (rec && held) {
        const peers = new Map([...infos].map(([from, b]) => [from, decodeHeld(b, from)] as const));
        const choice = chooseEpoch(held, peers, this.o.index);
        if (choice.promote) {
          // Some node committed this epoch, so every node staged it: promoting is safe.
          await this.o.store.commitPending(params.tenant, params.keyId, params.version);
          this.o.logger.warn({ keyId: params.keyId, epoch: choice.epoch }, 'promoted pending epoch left by an interrupted refresh');
        }
        key = await this.o.store.getShare(params.tenant, params.keyId, params.version);
        if (!key) throw new TesseraError(ErrorCode.NotFound, `key ${params.keyId} version ${params.version} not found`);
      }
      const result = await body({ session, self: this.o.index, players, channel, identity: this.o.identity, membership: this.o.membership }, key);
      link.done(session);
      return result;
    } catch (e) {
      const err = asTesseraError(e);
      if (err.code !== ErrorCode.SessionAborted) link.fail(session, err.code, err.message, [...err.culprits]);
      this.o.logger.warn({ op: params.operation, keyId: params.keyId, session: toHex(session), code: err.code, culprits: err.culprits }, 'session failed');
      throw err;
    } finally {
      if (key) zeroize(key.secret.value);
      channel.close();
    }
  }
}

/** Anything that is not already typed (coordinator aborts are: node/link.ts) fails the session as aborted. */
function asTesseraError(e: unknown): TesseraError {
  if (isTesseraError(e)) return e;
  return new TesseraError(ErrorCode.SessionAborted, `session failed: ${(e as Error)?.message ?? String(e)}`);
}

function allNodes(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
