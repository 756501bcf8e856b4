/**
 * The one commit mechanism of every state-changing session (keygen, rotate, scheduled rotation,
 * refresh, import, every lifecycle transition): ../shared/design/sessions.md "Commit certificates".
 *
 *   stage  -> the result is stored beside the committed state, never used (ShareStore.stageChange);
 *   vote   -> recorded (synced) first, then the identity-signed vote goes to every peer;
 *   commit -> only with a valid vote of every required voter (the certificate), in one synced batch
 *             with the certificate (ShareStore.commitStaged); then the certificate goes to every peer,
 *             so a peer that missed a vote commits too.
 *
 * A node never commits on a peer's word: a vote or certificate that does not verify under the
 * membership's identity keys is refused. A node that staged but never voted drops its staged result
 * when the session fails (no certificate can exist without its vote). One that voted keeps it, unused,
 * until a certificate reaches it: from a peer in this session, in the hello of a later one
 * (node/sessions/engine.ts catch-up), or from `tessera repair` (applyCertificate below).
 */
import { type CommitCertificate, type CommitStatement, resultDigest, attestationBytes, verifyAttestations, decodeCertificate, encodeCertificate, sameStatement, stateResultDigest, verifyCertificate, voteBytes } from '../../core/commit.js';
import { toHex } from '../../core/bytes.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { identitySign, identityVerify, type IdentityKeyPair } from '../../core/identity.js';
import type { Operation } from '../../core/session.js';
import { TRANSITION_TARGETS } from '../../core/lifecycle.js';
import { isParty, partyIndices } from '../../core/committee.js';
import { equalBytes } from '../../core/bytes.js';
import type { PublicKeyPackage } from '../../core/types.js';
import type { KeyRecord, ShareStore, StagedEffect } from '../store/storage.js';
import type { SessionChannel } from './channel.js';
import { voteFor, type Deviations } from './deviations.js';


export interface CommitDeps {
  readonly self: number;
  readonly identity: IdentityKeyPair;
  readonly membership: ReadonlyMap<number, Uint8Array>;
  readonly store: ShareStore;
  /** Test-only crash points (node/service.ts FAULT_POINTS). */
  readonly crashPoint?: (name: string) => void;
  /** Test-only scripted misbehaviour (node/sessions/deviations.ts): the malicious-node harness. */
  readonly deviations?: Deviations;
}

/** What an operation hands to the commit step. */
export interface ChangeToCommit {
  readonly statement: CommitStatement;
  readonly effects: readonly StagedEffect[];
}

export interface Committed {
  readonly certificate: Uint8Array;
  readonly records: readonly KeyRecord[];
}

/**
 * Every member of the cluster: the required voters of a change staged before committees existed
 * (its staged record names no voters). Since then a change's required voters are its session's players
 * (sessions.md: all n for keygen; the key's committee for refresh, rotate and transitions; the old
 * quorum plus every new party for a reshare), stored with the staged result.
 */
export function requiredVoters(membership: ReadonlyMap<number, Uint8Array>): number[] {
  return [...membership.keys()].sort((a, b) => a - b);
}

/** The voters a staged change's certificate needs (see requiredVoters). */
export function stagedVoters(deps: Pick<CommitDeps, 'membership'>, staged: { readonly voters?: readonly number[] }): readonly number[] {
  return staged.voters ?? requiredVoters(deps.membership);
}

/**
 * Stage, vote, collect the certificate (or take a peer's), commit, pass the certificate on.
 * `peers` are the session's other players (all n for these operations).
 */
export async function certifyAndCommit(deps: CommitDeps, channel: SessionChannel, peers: readonly number[], change: ChangeToCommit): Promise<Committed> {
  const { store, self } = deps;
  const s = change.statement;
  // Every player of the session votes: the parameters every operator approved fix that set.
  const required = [self, ...peers].sort((a, b) => a - b);
  // The vote signs only the public statement, so it is made first and stored WITH the staged result in
  // one synced write. It is not released yet: a node releases its vote only once every required voter
  // attested that it staged the same result. So a node that never staged (a crash, a failed round)
  // leaves everyone free to drop (no vote was released: no certificate can exist), and once every node
  // staged, repair can always finish the commit from the stored votes.
  const bytes = voteBytes(s);
  const vote = identitySign(deps.identity.secretKey, bytes);
  await store.stageChange(s.tenant, s.keyId, { session: s.session, operation: s.operation, version: s.version, resultDigest: s.resultDigest, vote, voters: required }, change.effects);
  deps.crashPoint?.('commit-after-stage');
  const attestation = identitySign(deps.identity.secretKey, attestationBytes(s));
  channel.broadcast('commit/staged', attestation);
  const attestations = new Map([[deps.self, attestation]]);
  for (const [from, sig] of await channel.receiveAll('commit/staged', peers)) attestations.set(from, sig);
  // This node's own attestation was made just above: only the others' are verified.
  verifyAttestations(s, attestations, deps.membership, required.filter((v) => v !== self));
  await store.markReleased(s.tenant, s.keyId, s.session);
  deps.crashPoint?.('commit-after-release');
  if (!deps.deviations) channel.broadcast('commit/vote', vote);
  else {
    // The harness's malicious voter: a withheld, wrong or garbage vote to some peers (deviations.ts voteFor).
    for (const to of peers) {
      const sent = voteFor(deps.deviations, to, vote, deps.identity, s);
      if (sent) channel.send(to, 'commit/vote', sent);
    }
  }

  const certificate = await collectCertificate(deps, channel, peers, s, vote, bytes, required);
  const encoded = encodeCertificate(certificate);
  const records = await store.commitStaged(s.tenant, s.keyId, s.session, encoded);
  deps.crashPoint?.('commit-after-commit');
  // A peer that missed a vote (dropped by the relay, or withheld by a cheating node) commits on this.
  channel.broadcast('commit/cert', encoded);
  return { certificate: encoded, records };
}

/** Every peer's vote, or a valid certificate from any peer, whichever comes first. */
function collectCertificate(
  deps: CommitDeps,
  channel: SessionChannel,
  peers: readonly number[],
  s: CommitStatement,
  ownVote: Uint8Array,
  bytes: Uint8Array,
  required: readonly number[],
): Promise<CommitCertificate> {
  return new Promise<CommitCertificate>((resolve, reject) => {
    let settled = false;
    const finish = (f: () => void) => {
      if (!settled) {
        settled = true;
        f();
      }
    };
    const votes = new Map<number, Uint8Array>([[deps.self, ownVote]]);
    for (const peer of peers) {
      channel.receive(peer, 'commit/vote').then(
        (sig) => {
          // A vote that does not verify is for another result (that node computed something else) or
          // was damaged: either way this statement cannot be certified. Not evidence against anyone:
          // the vote travelled inside the encrypted channel, which a third party cannot open.
          if (!identityVerify(deps.membership.get(peer)!, bytes, sig)) {
            finish(() => reject(new TesseraError(ErrorCode.ConfirmationMismatch, `commit: node ${peer}'s vote is not for this result`)));
            return;
          }
          votes.set(peer, sig);
          if (required.every((v) => votes.has(v))) {
            // Decided on the votes: the peers' copies of the certificate are not read, so not checked.
            channel.ignore('commit/cert');
            finish(() => resolve({ ...s, votes }));
          }
        },
        (e) => finish(() => reject(e)),
      );
      channel.receive(peer, 'commit/cert').then(
        (encoded) => {
          if (settled) return; // the votes already decided: no need to verify a peer's copy
          try {
            const cert = decodeCertificate(encoded);
            if (!sameStatement(cert, s)) return; // not ours: ignore, the votes decide
            verifyCertificate(cert, deps.membership, required);
            finish(() => resolve(cert));
          } catch {
            // A certificate that does not check is ignored; the votes still decide.
          }
        },
        () => undefined, // the vote path reports session failures
      );
    }
  });
}

export type CertificateOutcome = 'committed' | 'already-committed';

/**
 * Finish a commit from a certificate someone handed us (a peer's catch-up, `tessera repair`):
 * verify it against the membership, then apply the staged change it certifies. A lifecycle
 * transition needs no staged secret, so it applies even without one (a node restored from a backup,
 * or one that missed the session). Anything else without its staged result cannot be applied here:
 * BAD_STATE says so (the node was restored from an older backup, or lost its data).
 */
export async function applyCertificate(deps: CommitDeps, encoded: Uint8Array, scope?: { tenant: string; keyId: string }): Promise<{ outcome: CertificateOutcome; certificate: CommitCertificate; records: readonly KeyRecord[] }> {
  const cert = decodeCertificate(encoded);
  if (scope && (cert.tenant !== scope.tenant || cert.keyId !== scope.keyId)) {
    // Same answer as a missing key: a certificate of another tenant's key reveals nothing.
    throw new TesseraError(ErrorCode.NotFound, `key ${scope.keyId} has no such change`);
  }
  const { store } = deps;
  if (await store.getCertificate(cert.tenant, cert.keyId, cert.session)) {
    verifyCertificate(cert, deps.membership, [...cert.votes.keys()]);
    return { outcome: 'already-committed', certificate: cert, records: [] };
  }
  const staged = await store.getStaged(cert.tenant, cert.keyId);
  if (staged && toHex(staged.session) === toHex(cert.session)) {
    verifyCertificate(cert, deps.membership, stagedVoters(deps, staged));
    if (toHex(staged.resultDigest) !== toHex(cert.resultDigest)) {
      throw new TesseraError(ErrorCode.ConfirmationMismatch, `commit: the certificate is for another result than node ${deps.self} staged`);
    }
    const records = await store.commitStaged(cert.tenant, cert.keyId, cert.session, encoded);
    return { outcome: 'committed', certificate: cert, records };
  }
  const target = TRANSITION_TARGETS[cert.operation as keyof typeof TRANSITION_TARGETS];
  if (target !== undefined && toHex(cert.resultDigest) === toHex(stateResultDigest(target))) {
    // A transition's session is the key's committee: every holder of the version must have voted.
    const held = await store.get(cert.tenant, cert.keyId, cert.version);
    if (!held) throw new TesseraError(ErrorCode.NotFound, `key ${cert.keyId} version ${cert.version} not found on node ${deps.self}`);
    verifyCertificate(cert, deps.membership, partyIndices(held.publicKey));
    const rec = await store.applyCertifiedTransition(cert.tenant, cert.keyId, cert.version, target, cert.session, encoded);
    return { outcome: 'committed', certificate: cert, records: [rec] };
  }
  throw new TesseraError(
    ErrorCode.BadState,
    `node ${deps.self} has no staged result for the certified ${cert.operation} of ${cert.keyId} version ${cert.version} (session ${toHex(cert.session)}): ` +
      'this node was restored from an older backup or lost its data; its share must be re-dealt (resharing, issue 13)',
  );
}

/**
 * A reshare certificate handed to an old holder that was not a player (the SDK does this after the
 * session; so may repair): check it stands for a reshare of exactly the epoch this node holds, by every
 * new holder and at least t old holders (so at least one honest old holder dealt: t-1 cheating nodes
 * cannot forge one to make honest nodes erase their shares), then erase this node's share and record
 * if the new committee leaves it out. `newPackage` opens the certificate's result digest.
 */
export async function applyReshareHandoff(
  deps: CommitDeps,
  encoded: Uint8Array,
  newPackage: PublicKeyPackage,
  scope: { tenant: string; keyId: string },
): Promise<{ outcome: 'erased' | 'already-committed' | 'not-a-holder'; certificate: CommitCertificate }> {
  const cert = decodeCertificate(encoded);
  if (cert.tenant !== scope.tenant || cert.keyId !== scope.keyId) throw new TesseraError(ErrorCode.NotFound, `key ${scope.keyId} has no such change`);
  if (cert.operation !== 'reshare') throw new TesseraError(ErrorCode.BadInput, `the certificate is for a ${cert.operation}, not a reshare`);
  // Every vote in it must verify; which voters are enough is checked below against the key.
  verifyCertificate(cert, deps.membership, [...cert.votes.keys()]);
  const { store } = deps;
  if (await store.getCertificate(cert.tenant, cert.keyId, cert.session)) return { outcome: 'already-committed', certificate: cert };
  const held = await store.get(cert.tenant, cert.keyId, cert.version);
  if (!held) return { outcome: 'not-a-holder', certificate: cert };
  const old = held.publicKey;
  if (!equalBytes(resultDigest({ kind: 'epoch', package: newPackage }), cert.resultDigest)) {
    throw new TesseraError(ErrorCode.VerificationFailed, 'reshare handoff: the package given is not the certified result');
  }
  if (newPackage.suite !== old.suite || !equalBytes(newPackage.commitments[0]!, old.commitments[0]!) || newPackage.epoch !== old.epoch + 1) {
    throw new TesseraError(
      ErrorCode.EpochMismatch,
      `reshare handoff: the certificate reshares epoch ${newPackage.epoch - 1} of ${cert.keyId} version ${cert.version}, but node ${deps.self} holds epoch ${old.epoch}; run tessera repair`,
    );
  }
  const voters = new Set(cert.votes.keys());
  const missingNew = partyIndices(newPackage).filter((i) => !voters.has(i));
  const oldVoters = partyIndices(old).filter((i) => voters.has(i));
  if (missingNew.length > 0 || oldVoters.length < old.threshold) {
    throw new TesseraError(
      ErrorCode.VerificationFailed,
      `reshare handoff: a reshare needs the votes of every new holder and of at least ${old.threshold} old holders (missing new: ${missingNew.join(',') || 'none'}; old voters: ${oldVoters.join(',') || 'none'})`,
    );
  }
  if (isParty(newPackage, deps.self)) {
    throw new TesseraError(
      ErrorCode.BadState,
      `node ${deps.self} is in the new committee of ${cert.keyId} but was not a player of the reshare, so it has no new share: run the reshare again with it`,
    );
  }
  const outcome = await store.leaveOnCertificate(cert.tenant, cert.keyId, cert.version, cert.session, encoded);
  return { outcome, certificate: cert };
}

/** The statement of this node's staged change of a key, if it is for `session`. */
async function stagedStatement(deps: CommitDeps, tenant: string, keyId: string, session: Uint8Array): Promise<CommitStatement> {
  const staged = await deps.store.getStaged(tenant, keyId);
  if (!staged || toHex(staged.session) !== toHex(session)) {
    throw new TesseraError(ErrorCode.NotFound, `key ${keyId} has no staged change for session ${toHex(session)} on node ${deps.self}`);
  }
  return { session: staged.session, operation: staged.operation as Operation, tenant, keyId, version: staged.version, resultDigest: staged.resultDigest };
}

/** Repair, step 1: this node's signed attestation that it staged the result of `session`. */
export async function attestStaged(deps: CommitDeps, tenant: string, keyId: string, session: Uint8Array): Promise<Uint8Array> {
  const s = await stagedStatement(deps, tenant, keyId, session);
  return identitySign(deps.identity.secretKey, attestationBytes(s));
}

/**
 * Repair, step 2: given every required voter's attestation that it staged this same result, release
 * this node's stored vote (the same rule as inside a session) and return it.
 */
export async function releaseVote(deps: CommitDeps, tenant: string, keyId: string, session: Uint8Array, attestations: ReadonlyMap<number, Uint8Array>): Promise<Uint8Array> {
  const s = await stagedStatement(deps, tenant, keyId, session);
  const staged = (await deps.store.getStaged(tenant, keyId))!;
  verifyAttestations(s, attestations, deps.membership, stagedVoters(deps, staged));
  return deps.store.markReleased(tenant, keyId, session);
}

/** The statement a session's votes sign. */
export function statementOf(session: Uint8Array, operation: Operation, tenant: string, keyId: string, version: number, resultDigest: Uint8Array): CommitStatement {
  return { session, operation, tenant, keyId, version, resultDigest };
}
