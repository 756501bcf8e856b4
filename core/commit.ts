/**
 * Commit certificates (../shared/design/sessions.md, "Commit certificates"): the evidence every
 * state-changing session ends with, and the only thing that makes a node commit.
 *
 * 1. Stage: each node computes the session's result and stores it as staged (never used).
 * 2. Vote: each node signs `voteBytes(statement)` with its ML-DSA-65 identity (FIPS 204) and sends it.
 * 3. Commit: a node commits when it holds a valid vote over the same statement from every required
 *    voter. That set of votes is the certificate; it is stored with the committed state, and whoever
 *    holds it (a peer, the coordinator, the SDK's repair) can finish the commit at a node that missed it.
 *
 * A statement binds the session id, the operation, the tenant, the key id, the version the result is
 * for and a digest of the public result (`resultDigest`): the public package of a new key or epoch,
 * or the target state of a transition. Nothing secret is in a statement or a certificate, so both can
 * be logged by id, stored in the clear and handed around by anyone; they are unforgeable because every
 * vote is an identity signature. This module is pure: it encodes, decodes and checks; node/ decides.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { Packr } from 'msgpackr';
import { concatBytes, equalBytes, framed, i2osp, toHex, utf8ToBytes } from './bytes.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import { IDENTITY_SIGNATURE_LENGTH, identityVerify } from './identity.js';
import { ID_RE, OPERATIONS, SESSION_ID_LENGTH, type Operation } from './session.js';
import type { PublicKeyPackage } from './types.js';

const VOTE_LABEL = utf8ToBytes('tessera/commit-vote/v1');
const RESULT_LABEL = utf8ToBytes('tessera/commit-result/v1');
const PACKAGE_LABEL = utf8ToBytes('tessera/public-package/v1');
const CERT_FORMAT = 1;
export const RESULT_DIGEST_LENGTH = 32;
const MAX_VOTERS = 255;

/** What every vote of one session signs. */
export interface CommitStatement {
  readonly session: Uint8Array;
  readonly operation: Operation;
  readonly tenant: string;
  readonly keyId: string;
  /** The key version the result is for (a new version for keygen/rotate/import). */
  readonly version: number;
  /** SHA-256 of the public result (resultDigest()). */
  readonly resultDigest: Uint8Array;
}

/** Votes of every required voter over one statement. */
export interface CommitCertificate extends CommitStatement {
  /** Voter index -> ML-DSA-65 signature over voteBytes(statement). */
  readonly votes: ReadonlyMap<number, Uint8Array>;
}

/** Validate a statement's fields (lengths, ids, ranges) before anything signs or checks it. */
export function checkStatement(s: CommitStatement): CommitStatement {
  ensure(typeof s === 'object' && s !== null, ErrorCode.BadInput, 'commit statement: expected an object');
  ensure(s.session instanceof Uint8Array && s.session.length === SESSION_ID_LENGTH, ErrorCode.BadInput, `commit statement: session must be ${SESSION_ID_LENGTH} bytes`);
  ensure((OPERATIONS as readonly string[]).includes(s.operation), ErrorCode.BadInput, 'commit statement: unknown operation');
  ensure(typeof s.tenant === 'string' && ID_RE.test(s.tenant), ErrorCode.BadInput, 'commit statement: bad tenant');
  ensure(typeof s.keyId === 'string' && ID_RE.test(s.keyId), ErrorCode.BadInput, 'commit statement: bad key id');
  ensure(Number.isSafeInteger(s.version) && s.version >= 1 && s.version <= 0xffffffff, ErrorCode.BadInput, 'commit statement: version must be 1..2^32-1');
  ensure(
    s.resultDigest instanceof Uint8Array && s.resultDigest.length === RESULT_DIGEST_LENGTH,
    ErrorCode.BadInput,
    `commit statement: result digest must be ${RESULT_DIGEST_LENGTH} bytes`,
  );
  return s;
}

/** The bytes a voter signs. */
export function voteBytes(s: CommitStatement): Uint8Array {
  checkStatement(s);
  return framed(VOTE_LABEL, s.session, utf8ToBytes(s.operation), utf8ToBytes(s.tenant), utf8ToBytes(s.keyId), i2osp(s.version, 4), s.resultDigest);
}

const ATTEST_LABEL = utf8ToBytes('tessera/commit-staged/v1');

/**
 * The bytes a node signs to attest "I have staged this statement's result and stored my vote for it".
 * A node releases its vote only once it holds such an attestation from every required voter, so a node
 * that never staged (a crash, a failed round) leaves every other node free to drop its staged change:
 * no vote was released, no certificate can exist.
 */
export function attestationBytes(s: CommitStatement): Uint8Array {
  checkStatement(s);
  return framed(ATTEST_LABEL, s.session, utf8ToBytes(s.operation), utf8ToBytes(s.tenant), utf8ToBytes(s.keyId), i2osp(s.version, 4), s.resultDigest);
}

/** Check that every required voter attested to exactly this statement (VERIFICATION_FAILED otherwise, no culprit). */
export function verifyAttestations(
  s: CommitStatement,
  attestations: ReadonlyMap<number, Uint8Array>,
  membership: ReadonlyMap<number, Uint8Array>,
  required: readonly number[],
): void {
  const bytes = attestationBytes(s);
  for (const voter of required) {
    const sig = attestations.get(voter);
    const pk = membership.get(voter);
    ensure(
      sig instanceof Uint8Array && pk !== undefined && sig.length === IDENTITY_SIGNATURE_LENGTH && identityVerify(pk, bytes, sig),
      ErrorCode.VerificationFailed,
      `commit: no valid attestation from node ${voter} that it staged this result`,
    );
  }
}

/** Two statements are the same (a vote for one counts for the other). */
export function sameStatement(a: CommitStatement, b: CommitStatement): boolean {
  return (
    equalBytes(a.session, b.session) &&
    a.operation === b.operation &&
    a.tenant === b.tenant &&
    a.keyId === b.keyId &&
    a.version === b.version &&
    equalBytes(a.resultDigest, b.resultDigest)
  );
}

/** Canonical digest of a public key package (every node computes the same from the same package). */
export function publicPackageDigest(pkg: PublicKeyPackage): Uint8Array {
  return sha256(
    framed(
      PACKAGE_LABEL,
      utf8ToBytes(pkg.suite),
      i2osp(pkg.threshold, 1),
      i2osp(pkg.parties, 1),
      i2osp(pkg.epoch, 4),
      concatBytes(...pkg.commitments.map((c) => framed(c))),
      concatBytes(...pkg.verifyingShares.map((c) => framed(c))),
      // The committee (core/committee.ts) only when the package names one: a key on nodes 1..n omits
      // `indices`, so its digest (and every certificate and sealed share bound to it) is unchanged.
      ...(pkg.indices !== undefined ? [utf8ToBytes('indices'), Uint8Array.from(pkg.indices)] : []),
    ),
  );
}

/**
 * The public result a session commits, which every honest node computes identically:
 * - `version`: a new key version (keygen, rotate, import): its package, exportability, rotation period,
 *   and for rotate the version it retires;
 * - `epoch`: a refreshed epoch of an existing version (refresh): its new package;
 * - `state`: a lifecycle transition of a version (retire, archive, activate, destroy).
 */
export type PublicResult =
  | {
      readonly kind: 'version';
      readonly package: PublicKeyPackage;
      readonly exportable: boolean;
      readonly rotationPeriodMs?: number;
      readonly retires?: number;
    }
  | { readonly kind: 'epoch'; readonly package: PublicKeyPackage }
  | { readonly kind: 'state'; readonly state: string };

export function resultDigest(r: PublicResult): Uint8Array {
  switch (r.kind) {
    case 'version':
      return sha256(
        framed(
          RESULT_LABEL,
          utf8ToBytes('version'),
          publicPackageDigest(r.package),
          Uint8Array.of(r.exportable ? 1 : 0),
          utf8ToBytes(r.rotationPeriodMs !== undefined ? String(r.rotationPeriodMs) : ''),
          utf8ToBytes(r.retires !== undefined ? String(r.retires) : ''),
        ),
      );
    case 'epoch':
      return sha256(framed(RESULT_LABEL, utf8ToBytes('epoch'), publicPackageDigest(r.package)));
    case 'state':
      return sha256(framed(RESULT_LABEL, utf8ToBytes('state'), utf8ToBytes(r.state)));
  }
}

/** The digest a transition to `state` commits (a certificate for it needs no staged secret). */
export function stateResultDigest(state: string): Uint8Array {
  return resultDigest({ kind: 'state', state });
}

/**
 * Check a certificate: every voter in `required` signed exactly this statement with its identity key
 * from `membership`, and no one else is in it. Returns nothing; throws VERIFICATION_FAILED naming the
 * problem (no culprit: whoever handed us a bad certificate may only be relaying it).
 */
export function verifyCertificate(cert: CommitCertificate, membership: ReadonlyMap<number, Uint8Array>, required: readonly number[]): void {
  checkStatement(cert);
  ensure(cert.votes instanceof Map, ErrorCode.BadInput, 'commit certificate: votes must be a map');
  const want = [...new Set(required)].sort((a, b) => a - b);
  const have = [...cert.votes.keys()].sort((a, b) => a - b);
  ensure(
    want.length === have.length && want.every((v, i) => v === have[i]),
    ErrorCode.VerificationFailed,
    `commit certificate: votes from nodes ${have.join(',') || 'none'}, required ${want.join(',')}`,
  );
  const bytes = voteBytes(cert);
  for (const voter of want) {
    const pk = membership.get(voter);
    ensure(pk !== undefined, ErrorCode.VerificationFailed, `commit certificate: node ${voter} is not a cluster member`);
    const sig = cert.votes.get(voter)!;
    ensure(
      sig instanceof Uint8Array && sig.length === IDENTITY_SIGNATURE_LENGTH && identityVerify(pk, bytes, sig),
      ErrorCode.VerificationFailed,
      `commit certificate: node ${voter}'s vote does not verify`,
    );
  }
}

// Maps, not msgpackr records: the encoding does not depend on msgpackr's structure cache.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

/** Canonical bytes of a certificate (votes in voter order). */
export function encodeCertificate(cert: CommitCertificate): Uint8Array {
  checkStatement(cert);
  const votes = [...cert.votes.entries()].sort((a, b) => a[0] - b[0]).map(([i, s]) => [i, s]);
  return Uint8Array.from(
    packr.pack({
      v: CERT_FORMAT,
      s: cert.session,
      o: cert.operation,
      t: cert.tenant,
      k: cert.keyId,
      n: cert.version,
      d: cert.resultDigest,
      w: votes,
    }),
  );
}

/**
 * The msgpack map that canonical bytes (this module's packr: maps, not records) hold, before any field is
 * read: bytes of 1..maxLength, that decode, to a map. `bad(why)` makes the caller's error. Shared by every
 * decoder of such bytes (certificates here, core/membership.ts memberships).
 */
export function unpackCanonicalMap(bytes: Uint8Array, maxLength: number, bad: (why: string) => Error): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > maxLength) throw bad('expected bytes');
  let o: unknown;
  try {
    o = packr.unpack(bytes);
  } catch {
    throw bad('does not decode');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('not a map');
  return o as Record<string, unknown>;
}

/** Strict decode: exact fields, types and lengths; nothing is coerced. */
export function decodeCertificate(bytes: Uint8Array): CommitCertificate {
  const bad = (why: string) => new TesseraError(ErrorCode.BadMessage, `commit certificate: ${why}`);
  const m = unpackCanonicalMap(bytes, 64 * 1024 * 1024, bad);
  if (Object.keys(m).sort().join(',') !== 'd,k,n,o,s,t,v,w') throw bad('unexpected fields');
  if (m.v !== CERT_FORMAT) throw bad('unknown format');
  if (!Array.isArray(m.w) || m.w.length === 0 || m.w.length > MAX_VOTERS) throw bad('bad vote list');
  const votes = new Map<number, Uint8Array>();
  for (const entry of m.w) {
    if (!Array.isArray(entry) || entry.length !== 2) throw bad('bad vote entry');
    const [i, s] = entry as [unknown, unknown];
    if (typeof i !== 'number' || !Number.isSafeInteger(i) || i < 1 || i > MAX_VOTERS) throw bad('bad voter index');
    if (!(s instanceof Uint8Array) || s.length !== IDENTITY_SIGNATURE_LENGTH) throw bad('bad vote signature length');
    if (votes.has(i)) throw bad('duplicate voter');
    votes.set(i, Uint8Array.from(s));
  }
  const asBytes = (x: unknown) => (x instanceof Uint8Array ? Uint8Array.from(x) : undefined);
  const cert = {
    session: asBytes(m.s) as Uint8Array,
    operation: m.o as Operation,
    tenant: m.t as string,
    keyId: m.k as string,
    version: m.n as number,
    resultDigest: asBytes(m.d) as Uint8Array,
    votes,
  };
  try {
    checkStatement(cert);
  } catch (e) {
    throw bad((e as Error).message.replace(/^commit statement: /, ''));
  }
  return cert;
}

/** A short id for logs and reports: never more than the session and digest prefixes. */
export function certificateId(s: CommitStatement): string {
  return `${toHex(s.session)}:${toHex(s.resultDigest).slice(0, 16)}`;
}
