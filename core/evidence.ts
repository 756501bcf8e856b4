/**
 * Transferable evidence of equivocation (and of a bad signed sub-share), and its check.
 *
 * A party is named as a culprit only on evidence a third party can check (issue 9; sessions.md,
 * "Evidence and blame"). For equivocation that evidence is two different messages the culprit signed
 * with its identity for the same run and the same round: two DKG / refresh round-1 packages
 * (core/jointfeldman.ts round1SignedBytes) or two FROST round-1 commitments (core/sign.ts
 * signCommitSignedBytes). Core functions attach it to the Equivocation TesseraError they throw
 * (`error.evidence`); the SDK re-checks it with verifyEquivocationEvidence and the culprit's identity
 * public key from its cluster file before it reports the culprit.
 *
 * Everything here is public: commitments, proofs, signatures, session and run ids.
 */
import { Packr } from 'msgpackr';
import { equalBytes } from './bytes.js';
import { batchSignedBytes, envelopeHash, envelopeSignedBytes, isBatchList, type EnvelopeFields } from './envelope.js';
import { identityVerify } from './identity.js';
import { round1SignedBytes, type Round1Binding } from './jointfeldman.js';
import type { DkgRound1Msg, ReshareDealMsg, SignedCommitMsg } from './messages.js';
import { reshareDealSignedBytes, reshareShareSignedBytes, reshareSubShareFits, type ReshareBinding } from './reshare.js';
import { signCommitSignedBytes, type SignBinding } from './sign.js';

/** Two round-1 packages `signer` signed for one DKG or refresh run. */
export interface JointFeldmanEquivocation {
  readonly protocol: 'dkg' | 'refresh';
  /** 1-based index of the party that signed both. */
  readonly signer: number;
  /** What both signatures are bound to (suite, t, n, session, run id, epoch). */
  readonly binding: Round1Binding;
  readonly first: DkgRound1Msg;
  readonly second: DkgRound1Msg;
}

/** Two FROST round-1 commitments `signer` signed for one signing run. */
export interface SignEquivocation {
  readonly protocol: 'sign';
  readonly signer: number;
  /** What both signatures are bound to (suite, session, run id). */
  readonly binding: SignBinding;
  readonly first: SignedCommitMsg;
  readonly second: SignedCommitMsg;
}

/** Two deals `signer` signed for one reshare run (core/reshare.ts reshareDealSignedBytes). */
export interface ReshareEquivocation {
  readonly protocol: 'reshare';
  readonly signer: number;
  /** What both signatures are bound to (suite, session, run id, old package, target, dealer set). */
  readonly binding: ReshareBinding;
  readonly first: ReshareDealMsg;
  readonly second: ReshareDealMsg;
}

/**
 * A sub-share `signer` signed for `recipient` that does not fit the commitments it signed in its deal
 * for the same run (core/reshare.ts reshareShareSignedBytes, reshareDealSignedBytes): the dealer dealt
 * a bad share. The sub-share is shown only because it is bad: a valid one is never evidence.
 */
export interface ReshareBadShare {
  readonly protocol: 'reshare-share';
  readonly signer: number;
  readonly binding: ReshareBinding;
  readonly recipient: number;
  readonly deal: ReshareDealMsg;
  readonly share: Uint8Array;
  readonly signature: Uint8Array;
}

function verifyReshareBadShare(e: ReshareBadShare, identityPublicKey: Uint8Array): boolean {
  if (!(e.deal?.signature instanceof Uint8Array) || !(e.signature instanceof Uint8Array)) return false;
  return (
    identityVerify(identityPublicKey, reshareDealSignedBytes(e.binding, e.signer, e.deal), e.deal.signature) &&
    identityVerify(identityPublicKey, reshareShareSignedBytes(e.binding, e.signer, e.recipient, e.share), e.signature) &&
    !reshareSubShareFits(e.binding, e.deal, e.recipient, e.share)
  );
}

/**
 * A channel envelope as its sender signed it (core/envelope.ts), with the signature: over the
 * envelope's signed bytes, or, when `b` is present, over the batch of envelope hashes `b`
 * (core/envelope.ts batchSignedBytes), which must list this envelope's hash.
 */
export interface SignedEnvelope extends EnvelopeFields {
  readonly s: Uint8Array;
  readonly b?: readonly Uint8Array[];
}

/** True when `signer`'s identity key signed `env` (alone, or in a batch that lists its hash). */
function envelopeSigned(session: Uint8Array, signer: number, env: SignedEnvelope, identityPublicKey: Uint8Array): boolean {
  if (typeof env !== 'object' || env === null || env.f !== signer || !(env.s instanceof Uint8Array)) return false;
  if (env.b === undefined) return identityVerify(identityPublicKey, envelopeSignedBytes(session, env), env.s);
  if (!isBatchList(env.b)) return false;
  const h = envelopeHash(session, env);
  if (!env.b.some((x) => equalBytes(x, h))) return false;
  return identityVerify(identityPublicKey, batchSignedBytes(session, signer, env.b), env.s);
}

/**
 * Channel envelopes `signer` signed that an honest node never signs: a message under a round the
 * session's operation does not run ('undeclared-round', one envelope), or two different messages for
 * one round to one receiver ('two-messages'). Checking the first needs the operation's rounds
 * (core/session.ts declaredRounds); both need the session id.
 */
export interface EnvelopeEvidence {
  readonly protocol: 'envelope';
  readonly fault: 'undeclared-round' | 'two-messages';
  readonly signer: number;
  readonly session: Uint8Array;
  readonly envelopes: readonly SignedEnvelope[];
}

export type EquivocationEvidence = JointFeldmanEquivocation | SignEquivocation | ReshareEquivocation | ReshareBadShare | EnvelopeEvidence;

/** What checking envelope evidence needs to know about the session it is offered for. */
export interface EvidenceContext {
  /** The session the culprit is accused in (evidence from another session proves nothing here). */
  readonly session?: Uint8Array;
  /** The rounds that session's operation runs (core/session.ts declaredRounds). */
  readonly declaredRounds?: readonly string[];
}

function verifyEnvelopeEvidence(e: EnvelopeEvidence, identityPublicKey: Uint8Array, context: EvidenceContext): boolean {
  if (!(context.session instanceof Uint8Array) || !(e.session instanceof Uint8Array) || !equalBytes(e.session, context.session)) return false;
  if (!Array.isArray(e.envelopes)) return false;
  const signedOk = (env: SignedEnvelope) => envelopeSigned(e.session, e.signer, env, identityPublicKey);
  if (e.fault === 'undeclared-round') {
    const [env] = e.envelopes;
    return (
      e.envelopes.length === 1 &&
      env !== undefined &&
      Array.isArray(context.declaredRounds) &&
      env.k === 'data' &&
      typeof env.r === 'string' &&
      !context.declaredRounds.includes(env.r) &&
      signedOk(env)
    );
  }
  if (e.fault === 'two-messages') {
    const [a, b] = e.envelopes;
    if (e.envelopes.length !== 2 || !a || !b || a.r !== b.r || a.t !== b.t) return false;
    if (equalBytes(envelopeSignedBytes(e.session, a), envelopeSignedBytes(e.session, b))) return false;
    return signedOk(a) && signedOk(b);
  }
  return false;
}

/** The two signed byte strings and their signatures; throws on malformed evidence. */
function signedPair(e: EquivocationEvidence): [Uint8Array, Uint8Array, Uint8Array, Uint8Array] {
  if (e.protocol === 'sign') {
    return [signCommitSignedBytes(e.binding, e.signer, e.first), e.first.signature, signCommitSignedBytes(e.binding, e.signer, e.second), e.second.signature];
  }
  if (e.protocol === 'reshare') {
    return [reshareDealSignedBytes(e.binding, e.signer, e.first), e.first.signature, reshareDealSignedBytes(e.binding, e.signer, e.second), e.second.signature];
  }
  if (e.protocol !== 'dkg' && e.protocol !== 'refresh') throw new Error('unknown protocol');
  // The binding's mode must be the protocol named, or a refresh package could pose as a DKG one.
  if (e.binding?.mode !== e.protocol) throw new Error('mode and protocol differ');
  return [round1SignedBytes(e.binding, e.signer, e.first), e.first.signature, round1SignedBytes(e.binding, e.signer, e.second), e.second.signature];
}

/**
 * True when `evidence` proves that the party holding `identityPublicKey` (ML-DSA-65, core/identity.ts)
 * equivocated: two messages for the same protocol, session, run and round, with different content,
 * each validly signed with that key. Never throws: malformed evidence is simply not evidence.
 * The caller picks `identityPublicKey` as the key of party `evidence.signer`.
 */
export function verifyEquivocationEvidence(evidence: EquivocationEvidence, identityPublicKey: Uint8Array, context: EvidenceContext = {}): boolean {
  try {
    if (typeof evidence !== 'object' || evidence === null) return false;
    if (evidence.protocol === 'envelope') return verifyEnvelopeEvidence(evidence, identityPublicKey, context);
    if (evidence.protocol === 'reshare-share') return verifyReshareBadShare(evidence, identityPublicKey);
    const [a, sigA, b, sigB] = signedPair(evidence);
    if (!(sigA instanceof Uint8Array) || !(sigB instanceof Uint8Array)) return false;
    // The signed bytes hold the whole content: equal bytes are the same message, signed twice.
    if (equalBytes(a, b)) return false;
    return identityVerify(identityPublicKey, a, sigA) && identityVerify(identityPublicKey, b, sigB);
  } catch {
    return false;
  }
}

// Maps, not msgpackr records: the bytes do not depend on msgpackr's structure cache.
const evidencePackr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
const MAX_EVIDENCE_BYTES = 4 * 1024 * 1024;

/** Bytes of a list of evidence, to carry it over HTTP (node/http/api.ts) to the SDK, which re-checks it. */
export function encodeEvidence(list: readonly EquivocationEvidence[]): Uint8Array {
  return Uint8Array.from(evidencePackr.pack(list));
}

/**
 * Decode evidence bytes into candidate evidence. Only the outer shape is checked here; whether an item
 * proves anything is verifyEquivocationEvidence's decision (it never throws on malformed items).
 */
export function decodeEvidence(bytes: Uint8Array): EquivocationEvidence[] {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > MAX_EVIDENCE_BYTES) return [];
  try {
    const v = evidencePackr.unpack(bytes) as unknown;
    if (!Array.isArray(v) || v.length > 255) return [];
    return v.filter((x): x is EquivocationEvidence => typeof x === 'object' && x !== null && Number.isSafeInteger((x as { signer?: unknown }).signer));
  } catch {
    return [];
  }
}
