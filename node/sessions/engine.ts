/**
 * The session engine: one piece of code that runs every operation's session, in the spirit of
 * taurus multi-party-sig's handler (../shared/design/sessions.md, "Life of a session").
 *
 *   join    -> the coordinator starts the session once every player joined with the same digest;
 *   claim   -> meanwhile, the session id is recorded (synced) and refused if this node ever accepted it
 *              before (a refusal fails the session at the coordinator);
 *   hello   -> the end-to-end channel opens (node/sessions/channel.ts): once the claim is on disk, this
 *              node signs and sends its hello without waiting for the start (the coordinator holds it
 *              until then), so the hellos cross while the last player joins. The signed hellos carry the session
 *              digest, each player's fresh run contribution (core/run-id.ts: every identity-signed
 *              protocol message binds the run id) and, for a session on an existing key version, the
 *              epoch and package digest the player holds;
 *   catch-up-> players that hold an older epoch than a peer are brought forward by that peer's commit
 *              certificate, never by its claim (node/sessions/commit.ts applyCertificate);
 *   body    -> the operation's rounds (node/sessions/protocols.ts) and, for a state change, the commit step
 *              (ctx.commit: node/sessions/commit.ts certifyAndCommit);
 *   end     -> done or fail at the coordinator; a staged change this node never voted for is dropped;
 *              the share and the channel keys are wiped, however the session ends.
 */
import { Packr } from 'msgpackr';
import { randomBytes } from '@noble/hashes/utils.js';
import type { Logger } from 'pino';
import { equalBytes, toHex, zeroize } from '../../core/bytes.js';
import { publicPackageDigest } from '../../core/commit.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { IdentityKeyPair } from '../../core/identity.js';
import { RUN_CONTRIBUTION_LENGTH, deriveRunId } from '../../core/run-id.js';
import { CATCH_UP_ROUND, declaredRounds, sessionDigest, type SessionParams } from '../../core/session.js';
import type { KeyShare, PublicKeyPackage } from '../../core/types.js';
import { sessionScope } from '../../contract/relay.js';
import { SessionChannel, type RelayLink } from './channel.js';
import { isSessionAborted } from './link.js';
import type { PairKeys } from './pair-keys.js';
import { asTesseraError } from '../governance/gate.js';
import type { DriverContext } from './protocols.js';
import type { KeyRecord, ShareStore } from '../store/storage.js';
import { flood, floodRounds, type Deviations } from './deviations.js';
import { applyCertificate, applyReshareHandoff, attestStaged, certifyAndCommit, releaseVote, type ChangeToCommit, type Committed, type CommitDeps } from './commit.js';

export interface CoordinatorSessions extends RelayLink {
  /** Join with the digest; resolves when the coordinator starts the session, rejects on abort. */
  /** `scope` (contract/relay.ts sessionScope) lets the coordinator accept a decline only for the same tenant and key. */
  join(session: Uint8Array, digest: Uint8Array, players: number[], timeoutMs?: number, scope?: Uint8Array): Promise<unknown>;
  done(session: Uint8Array): void;
  fail(session: Uint8Array, code: string, message: string, culprits: number[]): void;
  online(): number[];
  readonly connected: boolean;
  /** Hand the coordinator this node's chain of certified membership changes (node/sessions/link.ts). */
  announceMembership?(): void;
}

export interface EngineOptions {
  readonly index: number;
  readonly identity: IdentityKeyPair;
  readonly membership: ReadonlyMap<number, Uint8Array>;
  readonly store: ShareStore;
  readonly link: CoordinatorSessions;
  /** This node's long-lived pairwise channel keys (node/sessions/pair-keys.ts), shared by its sessions. */
  readonly pairKeys: PairKeys;
  readonly logger: Logger;
  readonly sessionTimeoutMs?: number;
  /** Test-only crash points (node/service.ts FAULT_POINTS). */
  readonly crashPoint?: (name: string) => void;
  /** Test-only scripted misbehaviour (node/sessions/deviations.ts). */
  readonly deviations?: Deviations;
}



export interface SessionSpec {
  readonly session: Uint8Array;
  readonly params: SessionParams;
  /** The committed key version the session works on (its epoch is agreed; its share loaded if asked). */
  readonly uses?: { readonly tenant: string; readonly keyId: string; readonly version: number; readonly loadShare: boolean };
  readonly timeoutMs?: number;
}

/** What an operation's body gets: the protocol driver context, plus the commit step. */
export interface SessionContext extends DriverContext {
  /** The committed record the session uses (after catch-up), when the spec named one. */
  readonly record?: KeyRecord;
  commit(change: ChangeToCommit): Promise<Committed>;
}

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

interface Hello {
  /** The player's fresh run contribution. */
  readonly contribution: Uint8Array;
  /** The epoch and package digest it holds for the key version the session uses. */
  readonly held?: { readonly epoch: number; readonly digest: Uint8Array };
}

function encodeHello(h: Hello): Uint8Array {
  return Uint8Array.from(packr.pack({ r: h.contribution, ...(h.held ? { e: h.held.epoch, d: h.held.digest } : {}) }));
}

/** Strict decode of a peer's hello info. A malformed one is a relay-class fault here: no culprit. */
function decodeHello(bytes: Uint8Array, from: number, withHeld: boolean): Hello {
  const bad = () => new TesseraError(ErrorCode.BadMessage, `session: node ${from}'s hello does not decode`);
  let o: unknown;
  try {
    o = packr.unpack(bytes);
  } catch {
    throw bad();
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad();
  const m = o as Record<string, unknown>;
  if (Object.keys(m).sort().join(',') !== (withHeld ? 'd,e,r' : 'r')) throw bad();
  if (!(m.r instanceof Uint8Array) || m.r.length !== RUN_CONTRIBUTION_LENGTH) throw bad();
  if (!withHeld) return { contribution: Uint8Array.from(m.r) };
  if (!Number.isSafeInteger(m.e) || (m.e as number) < 0 || (m.e as number) > 0xffffffff || !(m.d instanceof Uint8Array) || m.d.length !== 32) throw bad();
  return { contribution: Uint8Array.from(m.r), held: { epoch: m.e as number, digest: Uint8Array.from(m.d) } };
}

export class SessionEngine {
  constructor(private readonly o: EngineOptions) {}

  private get commitDeps(): CommitDeps {
    return {
      self: this.o.index,
      identity: this.o.identity,
      membership: this.o.membership,
      store: this.o.store,
      ...(this.o.crashPoint ? { crashPoint: this.o.crashPoint } : {}),
      ...(this.o.deviations ? { deviations: this.o.deviations } : {}),
    };
  }

  /** Run one session: claim, join, hello, catch-up, body, end (see the module comment). */
  async run<T>(spec: SessionSpec, body: (ctx: SessionContext, key?: KeyShare) => Promise<T>): Promise<T> {
    const { link, store, index: self } = this.o;
    const { session, params } = spec;
    if (!link.connected) throw new TesseraError(ErrorCode.Unavailable, 'node is not connected to the coordinator');
    const digest = sessionDigest(session, params);
    const players = [...params.players];
    const peers = players.filter((p) => p !== self);
    // The rounds this operation runs (core/session.ts declaredRounds, the same table the SDK checks evidence with).
    const rounds = [...declaredRounds(params.operation, params.suite)];
    const channel = new SessionChannel({
      session,
      self,
      players,
      identity: this.o.identity,
      membership: this.o.membership,
      link,
      pairKeys: this.o.pairKeys,
      digest,
      // The harness's flooder declares its flood rounds to its own channel only (deviations.ts floodRounds).
      rounds: [...rounds, ...floodRounds(this.o.deviations)],
    });
    // A test crash point stops the process at once: what the node sent before it (still in this turn's
    // channel batch) goes out first, as if each envelope had been written when it was sent.
    const crashPoint = this.o.crashPoint
      ? (name: string) => {
          channel.flush();
          this.o.crashPoint!(name);
        }
      : undefined;
    let key: KeyShare | undefined;
    const contribution = randomBytes(RUN_CONTRIBUTION_LENGTH);
    // Join now; claim and open the channel while the coordinator waits for the other players. A join
    // the link refused or the coordinator aborted is not failed again (that would end a session of the
    // same id this node already runs, or is pointless after an abort).
    let joinFailed = false;
    const started = link.join(session, digest, players, spec.timeoutMs ?? this.o.sessionTimeoutMs, sessionScope(session, params.tenant, params.keyId));
    started.catch(() => {
      joinFailed = true;
    });
    try {
      await store.claimSession(session);
      let record = spec.uses ? await this.requireRecord(spec.uses) : undefined;
      const mine: Hello = { contribution, ...(record ? { held: { epoch: record.epoch, digest: publicPackageDigest(record.publicKey) } } : {}) };
      // The harness's malicious node claims a newer epoch it holds no certificate for.
      const sent: Hello = this.o.deviations?.claimEpochAhead && mine.held ? { contribution, held: { epoch: mine.held.epoch + 1, digest: randomBytes(32) } } : mine;
      // Only now, with the claim on disk, does anything signed for this session leave the node.
      const opening = channel.open(encodeHello(sent));
      opening.catch(() => undefined); // awaited below, after the start (whose abort is the better error)
      await started;
      const infos = await opening;
      flood(this.o.deviations, channel, peers, rounds); // the harness's flooder (no-op without deviations)
      const hellos = new Map<number, Hello>([[self, mine]]);
      for (const [from, bytes] of infos) hellos.set(from, decodeHello(bytes, from, record !== undefined));
      const runId = deriveRunId(digest, new Map([...hellos].map(([i, h]) => [i, h.contribution] as const)), players);
      if (record && spec.uses && this.o.deviations?.claimEpochAhead) {
        for (const to of peers) channel.send(to, CATCH_UP_ROUND, new Uint8Array()); // a claim, no certificate
      } else if (record && spec.uses) record = await this.catchUp(channel, spec.uses, record, hellos);
      if (record && spec.uses?.loadShare) {
        await this.refuseReleasedDestroy(spec.uses);
        key = await store.getShare(spec.uses.tenant, spec.uses.keyId, spec.uses.version);
        if (!key) throw new TesseraError(ErrorCode.NotFound, `key ${spec.uses.keyId} version ${spec.uses.version} not found`);
      }
      const ctx: SessionContext = {
        session,
        runId,
        self,
        players,
        channel,
        identity: this.o.identity,
        membership: this.o.membership,
        ...(this.o.deviations ? { deviations: this.o.deviations } : {}),
        ...(crashPoint ? { crashPoint } : {}),
        ...(record ? { record } : {}),
        commit: (change) => certifyAndCommit({ ...this.commitDeps, ...(crashPoint ? { crashPoint } : {}) }, channel, peers, change),
      };
      const result = await body(ctx, key);
      channel.flush(); // the last envelopes (e.g. the commit certificate) go out before the done
      link.done(session);
      return result;
    } catch (e) {
      const err = asTesseraError(e);
      // Every failure of this node goes to the coordinator, so the peers stop at once; not an abort the
      // link itself reported (the coordinator knows it), nor a join the link refused.
      if (!isSessionAborted(e) && !joinFailed) link.fail(session, err.code, err.message, [...err.culprits]);
      this.o.logger.warn({ op: params.operation, keyId: params.keyId, session: toHex(session), code: err.code, culprits: err.culprits }, 'session failed');
      throw err;
    } finally {
      if (key) zeroize(key.secret.value, key.secret.pairwise);
      zeroize(contribution);
      channel.close();
    }
  }

  /**
   * Bring every player to the newest epoch any of them holds, on certificates only. A player that is
   * ahead sends the certificate of its current epoch to each player behind it; a player behind takes
   * the first that verifies and commits its staged result (applyCertificate). Two players at the same
   * epoch with different packages, or a peer that claims a newer epoch and sends no valid certificate,
   * fail the session (no culprit: the claim travelled inside the encrypted channel).
   */
  private async catchUp(channel: SessionChannel, uses: NonNullable<SessionSpec['uses']>, record: KeyRecord, hellos: ReadonlyMap<number, Hello>): Promise<KeyRecord> {
    const self = this.o.index;
    let newest = record.epoch;
    for (const h of hellos.values()) newest = Math.max(newest, h.held!.epoch);
    const atNewest = [...hellos].filter(([, h]) => h.held!.epoch === newest);
    for (const [i, h] of atNewest) {
      if (!equalBytes(h.held!.digest, atNewest[0]![1].held!.digest)) {
        throw new TesseraError(ErrorCode.EpochMismatch, `nodes ${atNewest[0]![0]} and ${i} hold different packages at epoch ${newest} of ${uses.keyId} version ${uses.version}`);
      }
    }
    if (record.epoch === newest) {
      const behind = [...hellos].filter(([i, h]) => i !== self && h.held!.epoch < newest).map(([i]) => i);
      if (behind.length > 0) {
        const cert = record.certSession && (await this.o.store.getCertificate(uses.tenant, uses.keyId, record.certSession));
        for (const to of behind) channel.send(to, CATCH_UP_ROUND, cert ?? new Uint8Array());
        this.o.logger.info({ keyId: uses.keyId, version: uses.version, epoch: newest, behind }, 'sent the commit certificate of the current epoch to nodes behind');
      }
      return record;
    }
    const ahead = atNewest.map(([i]) => i);
    const errors: string[] = [];
    for (const from of ahead) {
      const cert = await channel.receive(from, CATCH_UP_ROUND);
      try {
        if (cert.length === 0) throw new TesseraError(ErrorCode.BadState, 'no certificate');
        const applied = await applyCertificate(this.commitDeps, cert, { tenant: uses.tenant, keyId: uses.keyId });
        const now = await this.requireRecord(uses);
        if (now.epoch !== newest) throw new TesseraError(ErrorCode.EpochMismatch, `the certificate brought epoch ${now.epoch}, not ${newest}`);
        this.o.logger.warn({ keyId: uses.keyId, version: uses.version, epoch: newest, from, outcome: applied.outcome }, 'committed a newer epoch on a peer\'s commit certificate');
        return now;
      } catch (e) {
        errors.push(`node ${from}: ${(e as Error).message}`);
      }
    }
    throw new TesseraError(
      ErrorCode.EpochMismatch,
      `node ${self} holds epoch ${record.epoch} of ${uses.keyId} version ${uses.version}; nodes ${ahead.join(',')} claim epoch ${newest} but no certificate this node could apply reached it (${errors.join('; ')})`,
    );
  }

  /**
   * A destroyed key never decrypts again: once this node released its vote to destroy a version, a
   * certificate may exist at a peer (that peer committed and crashed before forwarding it), so the share
   * is not used any more. A released vote is never dropped: repair can only finish this destroy.
   */
  private async refuseReleasedDestroy(uses: NonNullable<SessionSpec['uses']>): Promise<void> {
    const staged = await this.o.store.getStaged(uses.tenant, uses.keyId);
    if (staged?.released && staged.operation === 'destroy' && staged.version === uses.version) {
      throw new TesseraError(
        ErrorCode.BadState,
        `key ${uses.keyId} version ${uses.version} is being destroyed on node ${this.o.index} (session ${toHex(staged.session)} awaits its certificate): its share is not used; run tessera repair --key-id ${uses.keyId}`,
      );
    }
  }

  private async requireRecord(uses: NonNullable<SessionSpec['uses']>): Promise<KeyRecord> {
    const rec = await this.o.store.get(uses.tenant, uses.keyId, uses.version);
    if (!rec) throw new TesseraError(ErrorCode.NotFound, `key ${uses.keyId} version ${uses.version} not found`);
    return rec;
  }

  /** Apply a certificate handed over by the SDK's repair (node/http: POST /v1/keys/:keyId/repair). */
  applyCertificate(encoded: Uint8Array, scope: { tenant: string; keyId: string }) {
    return applyCertificate(this.commitDeps, encoded, scope);
  }

  /** A reshare's certificate handed to an old holder that was not a player (node/sessions/commit.ts applyReshareHandoff). */
  reshareHandoff(encoded: Uint8Array, newPackage: PublicKeyPackage, scope: { tenant: string; keyId: string }) {
    return applyReshareHandoff(this.commitDeps, encoded, newPackage, scope);
  }

  /** Repair, step 1: this node's attestation that it staged the change of `session`. */
  attestStaged(tenant: string, keyId: string, session: Uint8Array): Promise<Uint8Array> {
    return attestStaged(this.commitDeps, tenant, keyId, session);
  }

  /** Repair, step 2: release this node's stored vote, given every voter's attestation. */
  releaseVote(tenant: string, keyId: string, session: Uint8Array, attestations: ReadonlyMap<number, Uint8Array>): Promise<Uint8Array> {
    return releaseVote(this.commitDeps, tenant, keyId, session, attestations);
  }

  /**
   * At start: say which staged changes wait (a session that ended between staging and committing).
   * Nothing is dropped here: whether the change can still commit depends on the other nodes, which
   * `tessera repair` asks (sdk/client.ts Cluster.repair).
   */
  async resolveAtStart(): Promise<{ waiting: number; released: number }> {
    let waiting = 0;
    let released = 0;
    for (const s of await this.o.store.listStaged()) {
      waiting++;
      if (s.released) released++;
      this.o.logger.warn({ keyId: s.keyId, operation: s.operation, released: s.released, session: toHex(s.session) }, 'a staged change awaits its resolution: run tessera repair');
    }
    return { waiting, released };
  }
}
