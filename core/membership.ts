/**
 * Cluster membership (issue 13, item 2): which node indices make up the cluster, and each one's
 * ML-DSA-65 identity key (core/identity.ts). Pure: encodes, digests and checks; node/ and coordinator/ decide.
 *
 * A membership has an epoch. The one a node's (or the coordinator's) config file names is its starting
 * point (epoch 0 unless the file says otherwise); every later one is committed by a certified
 * 'membership' session (node/service.ts changeMembership), whose certificate (core/commit.ts) carries
 * the votes of every member whose identity the change keeps (`membershipVoters`): the nodes being
 * added, removed or given a new identity (a repaired node) never vote on their own admission. So
 * t-1 cheating nodes can neither add a node nor remove one without every honest unchanged member's
 * operator approving it, and anyone holding the current membership can check a change by itself
 * (`verifyMembershipChange`): the coordinator does exactly that before it adopts one.
 *
 * Indices are node indices (a share's x-coordinate is its holder's index, core/committee.ts), so a
 * removal leaves a gap: indices are never renumbered.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { Packr } from 'msgpackr';
import { equalBytes, framed, fromHex, i2osp, toHex, utf8ToBytes } from './bytes.js';
import { type CommitCertificate, unpackCanonicalMap, verifyCertificate } from './commit.js';
import { MAX_PARTY_INDEX } from './committee.js';
import { ErrorCode, TesseraError, ensure } from './errors.js';
import { IDENTITY_PUBLIC_KEY_LENGTH } from './identity.js';

export interface Member {
  readonly index: number;
  /** ML-DSA-65 identity public key, 1952 bytes. */
  readonly identityPublicKey: Uint8Array;
}

export interface Membership {
  /** 0 for a config file's membership unless it says otherwise; +1 per committed change. */
  readonly epoch: number;
  /** Sorted by index; indices distinct in 1..255, keys distinct. */
  readonly members: readonly Member[];
}

/**
 * The tenant and key id a membership change's commit statement names (core/commit.ts): a tenant no
 * API key can have (node/governance/tenants.ts refuses it), so no key's commit can ever be confused
 * with a membership change. The statement's version is the new membership's epoch.
 */
export const MEMBERSHIP_TENANT = 'tessera:cluster';
export const MEMBERSHIP_KEY_ID = 'membership';
/** The session suite field of a membership session: a session names a suite, this one uses none. */
export const MEMBERSHIP_SESSION_SUITE = 'ed25519';

const DIGEST_LABEL = utf8ToBytes('tessera/membership/v1');
const MAX_EPOCH = 0xfffffffe;
const MIN_MEMBERS = 2;

/** Validate and sort (by index) a membership. BAD_INPUT naming the problem; nothing is coerced. */
export function checkMembership(m: Membership, what = 'membership'): Membership {
  ensure(typeof m === 'object' && m !== null, ErrorCode.BadInput, `${what}: expected an object`);
  ensure(Number.isSafeInteger(m.epoch) && m.epoch >= 0 && m.epoch <= MAX_EPOCH, ErrorCode.BadInput, `${what}: epoch must be an integer 0..${MAX_EPOCH}`);
  ensure(Array.isArray(m.members), ErrorCode.BadInput, `${what}: members must be a list`);
  ensure(m.members.length >= MIN_MEMBERS && m.members.length <= MAX_PARTY_INDEX, ErrorCode.BadInput, `${what}: ${MIN_MEMBERS}..${MAX_PARTY_INDEX} members needed, got ${m.members.length}`);
  const indices = new Set<number>();
  const keys = new Set<string>();
  for (const x of m.members) {
    ensure(typeof x === 'object' && x !== null, ErrorCode.BadInput, `${what}: a member must be an object`);
    ensure(Number.isSafeInteger(x.index) && x.index >= 1 && x.index <= MAX_PARTY_INDEX, ErrorCode.BadInput, `${what}: member index ${String(x.index).slice(0, 16)} is not 1..${MAX_PARTY_INDEX}`);
    ensure(
      x.identityPublicKey instanceof Uint8Array && x.identityPublicKey.length === IDENTITY_PUBLIC_KEY_LENGTH,
      ErrorCode.BadInput,
      `${what}: node ${x.index}'s identity key must be ${IDENTITY_PUBLIC_KEY_LENGTH} bytes`,
    );
    ensure(!indices.has(x.index), ErrorCode.BadInput, `${what}: node ${x.index} is listed twice`);
    const hex = toHex(x.identityPublicKey);
    ensure(!keys.has(hex), ErrorCode.BadInput, `${what}: node ${x.index}'s identity key is another member's too`);
    indices.add(x.index);
    keys.add(hex);
  }
  const members = [...m.members].sort((a, b) => a.index - b.index).map((x) => ({ index: x.index, identityPublicKey: Uint8Array.from(x.identityPublicKey) }));
  return { epoch: m.epoch, members };
}

/** The membership as the map the session layer uses: index -> identity key. */
export function membershipMap(m: Membership): Map<number, Uint8Array> {
  return new Map(m.members.map((x) => [x.index, x.identityPublicKey] as const));
}

export function membershipFromMap(epoch: number, map: ReadonlyMap<number, Uint8Array>): Membership {
  return checkMembership({ epoch, members: [...map].map(([index, identityPublicKey]) => ({ index, identityPublicKey })) });
}

/** The members' indices, ascending. */
export function memberIndices(m: Membership): number[] {
  return m.members.map((x) => x.index);
}

/**
 * SHA-256 over the epoch and every (index, identity key), in index order: the result digest a
 * membership change's votes sign (core/commit.ts statement), so a certificate names exactly one membership.
 */
export function membershipDigest(m: Membership): Uint8Array {
  const c = checkMembership(m);
  return sha256(framed(DIGEST_LABEL, i2osp(c.epoch, 4), ...c.members.map((x) => framed(i2osp(x.index, 1), x.identityPublicKey))));
}

export interface MembershipChange {
  /** Indices in both, with the same identity key: the required voters of the change. */
  readonly unchanged: number[];
  /** New indices. */
  readonly added: number[];
  /** Indices that leave. */
  readonly removed: number[];
  /** Indices in both with a new identity key (a node that lost its data and came back: repair). */
  readonly replaced: number[];
}

/** What moving from `from` to `to` changes. */
export function diffMembership(from: Membership, to: Membership): MembershipChange {
  const a = membershipMap(checkMembership(from, 'the current membership'));
  const b = membershipMap(checkMembership(to, 'the new membership'));
  const unchanged: number[] = [];
  const replaced: number[] = [];
  const removed: number[] = [];
  for (const [i, key] of a) {
    const next = b.get(i);
    if (next === undefined) removed.push(i);
    else if (equalBytes(next, key)) unchanged.push(i);
    else replaced.push(i);
  }
  const added = [...b.keys()].filter((i) => !a.has(i));
  const asc = (x: number[]) => x.sort((p, q) => p - q);
  return { unchanged: asc(unchanged), added: asc(added), removed: asc(removed), replaced: asc(replaced) };
}

/**
 * Check that `to` may follow `from`: the next epoch, a real change, and at least two members whose
 * identity is kept (they are the voters: a session needs two players, and a cluster that keeps fewer
 * than two of its members is a new cluster, not a change of this one). Returns the change.
 */
export function checkMembershipStep(from: Membership, to: Membership): MembershipChange {
  const change = diffMembership(from, to);
  ensure(to.epoch === from.epoch + 1, ErrorCode.EpochMismatch, `membership: the change is to epoch ${to.epoch}, but the current membership is epoch ${from.epoch} (the next is ${from.epoch + 1})`);
  ensure(
    change.added.length + change.removed.length + change.replaced.length > 0,
    ErrorCode.BadParameters,
    'membership: the new membership is the current one',
  );
  ensure(
    change.unchanged.length >= 2,
    ErrorCode.BadParameters,
    `membership: a change must keep at least 2 members with their identity (they vote on it); this one keeps ${change.unchanged.join(',') || 'none'}`,
  );
  return change;
}

/** The members whose votes certify moving from `from` to `to`. */
export function membershipVoters(from: Membership, to: Membership): number[] {
  return checkMembershipStep(from, to).unchanged;
}

/**
 * Check a membership change on its certificate alone, given the current membership: the certificate
 * is a 'membership' statement for `to` (its digest, its epoch as the version) and carries a valid vote
 * of exactly every unchanged member, under the current membership's keys. VERIFICATION_FAILED otherwise.
 */
export function verifyMembershipChange(from: Membership, to: Membership, cert: CommitCertificate): MembershipChange {
  const change = checkMembershipStep(from, to);
  const bad = (why: string) => new TesseraError(ErrorCode.VerificationFailed, `membership certificate: ${why}`);
  if (cert.operation !== 'membership' || cert.tenant !== MEMBERSHIP_TENANT || cert.keyId !== MEMBERSHIP_KEY_ID) throw bad(`it certifies a ${cert.operation}, not a membership change`);
  if (cert.version !== to.epoch) throw bad(`it is for epoch ${cert.version}, not ${to.epoch}`);
  if (!equalBytes(cert.resultDigest, membershipDigest(to))) throw bad('it is for another membership');
  verifyCertificate(cert, membershipMap(from), change.unchanged);
  return change;
}

// Maps, not msgpackr records: the bytes do not depend on msgpackr's structure cache.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

/** Canonical bytes of a membership (stored by nodes and the coordinator, sent in relay frames). */
export function encodeMembership(m: Membership): Uint8Array {
  const c = checkMembership(m);
  return Uint8Array.from(packr.pack({ v: 1, e: c.epoch, m: c.members.map((x) => [x.index, x.identityPublicKey]) }));
}

/** Strict decode of encodeMembership's bytes. BAD_MESSAGE when they are not exactly that. */
export function decodeMembership(bytes: Uint8Array): Membership {
  const bad = (why: string) => new TesseraError(ErrorCode.BadMessage, `membership: ${why}`);
  const r = unpackCanonicalMap(bytes, 1024 * 1024, bad);
  if (Object.keys(r).sort().join(',') !== 'e,m,v' || r.v !== 1) throw bad('unexpected fields or format');
  if (!Array.isArray(r.m)) throw bad('members must be a list');
  const members = r.m.map((x: unknown) => {
    if (!Array.isArray(x) || x.length !== 2 || !(x[1] instanceof Uint8Array)) throw bad('bad member entry');
    return { index: x[0] as number, identityPublicKey: Uint8Array.from(x[1]) };
  });
  try {
    return checkMembership({ epoch: r.e as number, members });
  } catch (e) {
    throw bad((e as Error).message.replace(/^membership: /, ''));
  }
}

/** JSON form (hex keys) for files and HTTP: { epoch, members: [{ index, identityPublicKey }] }. */
export interface MembershipJson {
  epoch: number;
  members: { index: number; identityPublicKey: string }[];
}

export function membershipToJson(m: Membership): MembershipJson {
  const c = checkMembership(m);
  return { epoch: c.epoch, members: c.members.map((x) => ({ index: x.index, identityPublicKey: toHex(x.identityPublicKey) })) };
}

export function membershipFromJson(j: unknown, what = 'membership'): Membership {
  ensure(typeof j === 'object' && j !== null && !Array.isArray(j), ErrorCode.BadInput, `${what}: expected an object`);
  const o = j as Record<string, unknown>;
  ensure(Object.keys(o).every((k) => k === 'epoch' || k === 'members'), ErrorCode.BadInput, `${what}: unexpected fields`);
  ensure(Array.isArray(o.members), ErrorCode.BadInput, `${what}: members must be a list`);
  const members = (o.members as unknown[]).map((x, i) => {
    ensure(typeof x === 'object' && x !== null && !Array.isArray(x), ErrorCode.BadInput, `${what}.members[${i}]: expected an object`);
    const r = x as Record<string, unknown>;
    ensure(Object.keys(r).every((k) => k === 'index' || k === 'identityPublicKey'), ErrorCode.BadInput, `${what}.members[${i}]: unexpected fields`);
    return { index: r.index as number, identityPublicKey: fromHex(r.identityPublicKey, `${what}.members[${i}].identityPublicKey`, IDENTITY_PUBLIC_KEY_LENGTH) };
  });
  return checkMembership({ epoch: o.epoch as number, members }, what);
}
