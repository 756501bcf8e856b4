/**
 * The node's cluster membership (issue 13, item 2): which nodes are in the cluster, with which identity
 * keys, and the only path that changes it — a certified 'membership' session (core/membership.ts).
 *
 * `LiveMembership` holds the one index -> identity-key map that every session, channel and certificate
 * check of this node reads (node/sessions/engine.ts, channel.ts, commit.ts all keep the reference), so
 * adopting a committed change updates them all at once. It changes only:
 *   - at start, from the stored committed membership when there is one, else the config's (node/main.ts);
 *   - after this node commits a change: in a session it voted in (`change`), or from the change's
 *     certificate handed over by the SDK (`apply`: a node that crashed mid-change, or was not a voter).
 * Removed and replaced members' pair keys are wiped on adoption (node/sessions/pair-keys.ts forgetPeer),
 * and the coordinator is handed the chain of certified changes (node/sessions/link.ts), which it checks
 * itself before it admits a new identity.
 *
 * Every operation here needs an admin API key and goes through the gate (audited as membership.change
 * or membership.repair on every node that runs it).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { Logger } from 'pino';
import { equalBytes, framed, fromHex, toHex, utf8ToBytes } from '../../core/bytes.js';
import { decodeCertificate, encodeCertificate, verifyCertificate } from '../../core/commit.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import {
  MEMBERSHIP_KEY_ID,
  MEMBERSHIP_SESSION_SUITE,
  MEMBERSHIP_TENANT,
  checkMembershipStep,
  diffMembership,
  encodeMembership,
  memberIndices,
  membershipDigest,
  membershipFromJson,
  membershipToJson,
  verifyMembershipChange,
  type Membership,
  type MembershipChange,
} from '../../core/membership.js';
import { SESSION_ID_LENGTH, checkSessionParams, type SessionParams } from '../../core/session.js';
import type {
  ApplyMembershipRequest,
  ApplyMembershipResponse,
  ChangeMembershipRequest,
  ChangeMembershipResponse,
  MembershipHistoryResponse,
  MembershipResponse,
} from '../../contract/http.js';
import type { SessionEngine } from '../sessions/engine.js';
import { statementOf } from '../sessions/commit.js';
import type { PairKeys } from '../sessions/pair-keys.js';
import type { ShareStore } from '../store/storage.js';
import type { OperationGate } from './gate.js';
import { requireAdmin, type Principal } from './tenants.js';

/** The membership every part of this node reads (see the module comment). */
export class LiveMembership {
  /** index -> ML-DSA-65 identity key: the one map sessions, channels and certificate checks share. */
  readonly map: Map<number, Uint8Array>;
  private membership: Membership;
  private readonly listeners: ((next: Membership, change: MembershipChange) => void)[] = [];

  constructor(initial: Membership) {
    this.membership = initial;
    this.map = new Map(initial.members.map((m) => [m.index, m.identityPublicKey] as const));
  }

  get current(): Membership {
    return this.membership;
  }

  /** Member indices, ascending. */
  get indices(): number[] {
    return memberIndices(this.membership);
  }

  /**
   * The `parties` every session binds (core/session.ts): the largest member index, since players are
   * node indices and a removal leaves a gap. Every member computes it from the same committed membership.
   */
  get parties(): number {
    return Math.max(...this.indices);
  }

  onChange(listener: (next: Membership, change: MembershipChange) => void): void {
    this.listeners.push(listener);
  }

  /** Make a committed membership the live one (in place: every holder of `map` sees it). */
  adopt(next: Membership): MembershipChange {
    const change = diffMembership(this.membership, next);
    this.map.clear();
    for (const m of next.members) this.map.set(m.index, m.identityPublicKey);
    this.membership = next;
    for (const l of this.listeners) l(next, change);
    return change;
  }
}

export interface MembershipAdminOptions {
  readonly index: number;
  readonly live: LiveMembership;
  readonly engine: SessionEngine;
  readonly store: ShareStore;
  readonly gate: OperationGate;
  readonly pairKeys: PairKeys;
  /** Hand the coordinator the chain of changes (node/sessions/link.ts announceMembership). */
  readonly announce: () => void;
  readonly logger: Logger;
}

function membershipJson(m: Membership, committed: boolean): MembershipResponse {
  return { ...membershipToJson(m), digest: toHex(membershipDigest(m)), committed };
}

/** What a membership session's payload digest binds: the change from exactly this membership to that one. */
function changeParams(from: Membership, to: Membership, voters: readonly number[], parties: number): SessionParams {
  return checkSessionParams({
    operation: 'membership',
    tenant: MEMBERSHIP_TENANT,
    keyId: MEMBERSHIP_KEY_ID,
    version: to.epoch,
    suite: MEMBERSHIP_SESSION_SUITE,
    threshold: voters.length,
    parties,
    players: voters,
    payloadDigest: sha256(framed(utf8ToBytes('membership'), membershipDigest(from), membershipDigest(to))),
  });
}

export class MembershipAdmin {
  /** One membership change at a time on this node. */
  private changing = false;

  constructor(private readonly o: MembershipAdminOptions) {
    // Whatever path commits a membership change on this node (its session, a certificate handed over,
    // or the generic staged-change repair: node/sessions/commit.ts), the store says so, and it goes live.
    o.store.onKeyChange((tenant, keyId) => {
      if (tenant !== MEMBERSHIP_TENANT || keyId !== MEMBERSHIP_KEY_ID) return;
      this.adoptCommitted().catch((e: Error) => o.logger.error({ err: { message: e.message } }, 'membership: cannot read the committed membership'));
    });
    o.live.onChange((next, change) => {
      // A removed or replaced member's pair keys go now: the index may soon belong to another identity.
      for (const i of [...change.removed, ...change.replaced]) o.pairKeys.forgetPeer(i);
      o.logger.warn(
        { op: 'membership', epoch: next.epoch, members: memberIndices(next), added: change.added, removed: change.removed, replaced: change.replaced },
        'cluster membership changed',
      );
    });
  }

  /** Make the newest committed membership the live one, if it is newer (idempotent; the one place that adopts). */
  private async adoptCommitted(): Promise<void> {
    const committed = await this.o.store.getMembership();
    if (committed && committed.epoch > this.o.live.current.epoch) {
      this.o.live.adopt(committed);
      this.o.announce();
    }
  }

  async get(p: Principal): Promise<MembershipResponse> {
    requireAdmin(p);
    const current = this.o.live.current;
    const held = (await this.o.store.membershipHistory()).some((c) => c.membership.epoch === current.epoch);
    return membershipJson(current, held);
  }

  async history(p: Principal): Promise<MembershipHistoryResponse> {
    requireAdmin(p);
    const changes = await this.o.store.membershipHistory();
    return { changes: changes.map((c) => ({ ...membershipToJson(c.membership), certificate: toHex(c.certificate) })) };
  }

  /** The chain of committed changes, for the coordinator (bytes as the relay frame carries them). */
  async chain(): Promise<{ membership: Uint8Array; certificate: Uint8Array }[]> {
    const changes = await this.o.store.membershipHistory();
    return changes.map((c) => ({ membership: encodeMembership(c.membership), certificate: c.certificate }));
  }

  /**
   * Change the membership: a session of every member the change keeps (the voters), each asked by its
   * own operator with the same request; committed with all their votes, then live on this node.
   */
  change(p: Principal, req: ChangeMembershipRequest): Promise<ChangeMembershipResponse> {
    const session = fromHex(req.sessionId, 'sessionId', SESSION_ID_LENGTH);
    const { live, index: self } = this.o;
    let locked = false;
    return this.o.gate
      .run(
        { principal: p, operation: 'membership.change', authorize: 'admin', keyId: MEMBERSHIP_KEY_ID, version: req.epoch, session },
        async () => {
          const from = live.current;
          const to = membershipFromJson({ epoch: req.epoch, members: req.members }, 'members');
          const change = checkMembershipStep(from, to);
          if (!change.unchanged.includes(self)) {
            throw new TesseraError(
              ErrorCode.BadParameters,
              `node ${self} is ${change.removed.includes(self) ? 'removed' : 'given a new identity'} by this change: only the members it keeps (${change.unchanged.join(',')}) vote on it`,
            );
          }
          if (this.changing) throw new TesseraError(ErrorCode.BadState, `a membership change is already running on node ${self}`);
          this.changing = true;
          locked = true;
          return { version: to.epoch, from, to, change, params: changeParams(from, to, change.unchanged, live.parties) };
        },
        async ({ to, change, params }) => {
          const certificate = await this.o.engine.run({ session, params }, async (ctx) => {
            const committed = await ctx.commit({
              statement: statementOf(session, 'membership', MEMBERSHIP_TENANT, MEMBERSHIP_KEY_ID, to.epoch, membershipDigest(to)),
              effects: [{ kind: 'membership', version: to.epoch, membership: to }],
            });
            return committed.certificate;
          });
          // Committed (certificate and membership in one synced batch): only now does it become live.
          await this.adoptCommitted();
          return { ...membershipJson(to, true), node: self, certificate: toHex(certificate), ...change };
        },
      )
      .finally(() => {
        if (locked) this.changing = false;
      });
  }

  /**
   * Finish a membership change this node missed (it crashed after voting, it was restored, or it is the
   * node the change added or gave a new identity), from the change's certificate. Checked here against
   * this node's own membership, never taken on the caller's word:
   *   - the next epoch: verifyMembershipChange(current, next, certificate);
   *   - the epoch this node already runs at (a node started with the new membership in its config: the
   *     added or repaired node): the certificate must be for exactly that membership, with at least two
   *     voters, each a member whose key it names, every vote valid. Stored, so the node holds the evidence too.
   */
  apply(p: Principal, req: ApplyMembershipRequest): Promise<ApplyMembershipResponse> {
    const { live, index: self, store } = this.o;
    return this.o.gate.run(
      { principal: p, operation: 'membership.repair', authorize: 'admin', keyId: MEMBERSHIP_KEY_ID, version: req.epoch },
      async () => {
        const to = membershipFromJson({ epoch: req.epoch, members: req.members }, 'members');
        const cert = decodeCertificate(fromHex(req.certificate, 'certificate'));
        return { version: to.epoch, to, cert };
      },
      async ({ to, cert }) => {
        const from = live.current;
        const encoded = encodeCertificate(cert);
        if (to.epoch === from.epoch + 1) {
          verifyMembershipChange(from, to, cert);
          const outcome = await store.commitCertifiedMembership(to, cert.session, encoded);
          await this.adoptCommitted();
          return { ...membershipJson(to, true), node: self, outcome };
        }
        if (to.epoch === from.epoch && equalBytes(membershipDigest(to), membershipDigest(from))) {
          const held = (await store.membershipHistory()).find((c) => c.membership.epoch === to.epoch);
          if (held) return { ...membershipJson(to, true), node: self, outcome: 'already-committed' as const };
          if (cert.operation !== 'membership' || cert.tenant !== MEMBERSHIP_TENANT || cert.keyId !== MEMBERSHIP_KEY_ID || cert.version !== to.epoch || !equalBytes(cert.resultDigest, membershipDigest(to))) {
            throw new TesseraError(ErrorCode.VerificationFailed, `membership certificate: it is not for the membership of epoch ${to.epoch} this node runs`);
          }
          const voters = [...cert.votes.keys()];
          ensure(voters.length >= 2, ErrorCode.VerificationFailed, 'membership certificate: fewer than 2 voters');
          verifyCertificate(cert, live.map, voters);
          const outcome = await store.commitCertifiedMembership(to, cert.session, encoded);
          this.o.announce();
          return { ...membershipJson(to, true), node: self, outcome };
        }
        if (to.epoch <= from.epoch) {
          const held = (await store.membershipHistory()).find((c) => c.membership.epoch === to.epoch);
          if (held && equalBytes(membershipDigest(held.membership), membershipDigest(to))) return { ...membershipJson(to, true), node: self, outcome: 'already-committed' as const };
        }
        throw new TesseraError(
          ErrorCode.EpochMismatch,
          `node ${self} runs membership epoch ${from.epoch}: it takes the change to epoch ${from.epoch + 1} next (changes apply in order), not one to epoch ${to.epoch}`,
        );
      },
    );
  }
}
