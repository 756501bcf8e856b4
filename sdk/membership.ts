/**
 * The SDK's side of cluster membership changes (issue 13, items 2 and 3): the pure decisions behind
 * Cluster.membership / changeMembership / reshareAll (sdk/client.ts) and `tessera cluster ...`
 * (sdk/cli/cluster.ts), kept here without I/O so each is unit-tested on its own
 * (test/unit/membership-sdk.test.ts):
 * - the next member list of an add, a remove or a replace (repair of a node that lost its data), with
 *   the clear refusals an operator needs (index taken, unknown index, bad identity key, fewer than two voters);
 * - how the nodes' answers to GET /v1/admin/membership compare (agreement, laggards, divergence);
 * - each key version's target committee on the new membership, and whether it is already there (resume);
 * - the cluster file after a change, written atomically (temp file + rename, mode 0600).
 *
 * The membership model, its digest and its checks are core/membership.ts; nothing is re-implemented here.
 */
import { chmodSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toHex } from '../core/bytes.js';
import { isTesseraError } from '../core/errors.js';
import { IDENTITY_PUBLIC_KEY_LENGTH } from '../core/identity.js';
import { checkMembership, checkMembershipStep, type Membership, type MembershipChange } from '../core/membership.js';
import type { MemberJson, MembershipResponse } from '../contract/http.js';
import type { ClusterFile } from './cluster-file.js';
import { bytesOrHex } from './formats.js';
import { TesseraClientError } from './http.js';

/** A member of a new membership as the SDK is given it: its index and identity key, and how to reach it (a node this Cluster has no client for). */
export interface MemberSpec {
  index: number;
  /** ML-DSA-65 identity public key, hex (optional 0x) or bytes. */
  identityPublicKey: string | Uint8Array;
  url?: string;
  apiKey?: string;
  /** Pinned PEM certificate of the node (https). */
  ca?: string;
}

/** A core/ check's TesseraError as the SDK's error (same code and words). */
export function asClientError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw isTesseraError(e) ? new TesseraClientError(e.code, e.message) : e;
  }
}

/** An identity public key given by a caller: hex (optional 0x) or bytes, exactly 1952 bytes (ML-DSA-65). */
export function identityKeyOf(v: unknown, what: string): Uint8Array {
  let bytes: Uint8Array;
  if (v instanceof Uint8Array) bytes = Uint8Array.from(v);
  else if (typeof v === 'string') {
    try {
      bytes = bytesOrHex(v.trim(), what);
    } catch {
      throw new TesseraClientError('BAD_INPUT', `${what}: expected the node's ML-DSA-65 identity public key in hex`);
    }
  } else throw new TesseraClientError('BAD_INPUT', `${what}: expected the node's ML-DSA-65 identity public key (hex or bytes)`);
  if (bytes.length !== IDENTITY_PUBLIC_KEY_LENGTH) {
    throw new TesseraClientError('BAD_INPUT', `${what}: an ML-DSA-65 identity public key is ${IDENTITY_PUBLIC_KEY_LENGTH} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/** A node's answer to GET /v1/admin/membership as a checked Membership (its digest is not trusted: recomputed where needed). */
export function membershipOfResponse(r: Pick<MembershipResponse, 'epoch' | 'members'>, what = 'membership'): Membership {
  if (typeof r !== 'object' || r === null || !Array.isArray(r.members)) throw new TesseraClientError('BAD_RESPONSE', `${what}: not a membership`);
  return asClientError(() =>
    checkMembership(
      { epoch: r.epoch, members: r.members.map((m, k) => ({ index: m.index, identityPublicKey: identityKeyOf(m.identityPublicKey, `${what}.members[${k}].identityPublicKey`) })) },
      what,
    ),
  );
}

export function membersToJson(m: Membership): MemberJson[] {
  return m.members.map((x) => ({ index: x.index, identityPublicKey: toHex(x.identityPublicKey) }));
}

/** The membership `members` would make at `epoch`, checked (2..255 distinct indices and keys). */
export function membershipOf(epoch: number, members: readonly MemberSpec[], what = 'the new membership'): Membership {
  if (!Array.isArray(members)) throw new TesseraClientError('BAD_INPUT', `${what}: expected a list of { index, identityPublicKey }`);
  return asClientError(() =>
    checkMembership({ epoch, members: members.map((m, k) => ({ index: m?.index, identityPublicKey: identityKeyOf(m?.identityPublicKey, `${what}[${k}].identityPublicKey`) })) }, what),
  );
}

/** What a change does, checked as a step from `from` (core/membership.ts checkMembershipStep: next epoch, a real change, at least 2 voters). */
export function checkedStep(from: Membership, to: Membership): MembershipChange {
  return asClientError(() => checkMembershipStep(from, to));
}

function indexOf(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > 255) throw new TesseraClientError('BAD_INPUT', `${what}: expected a node index 1..255, got ${String(v).slice(0, 16)}`);
  return v;
}

/**
 * The next member list of one operation on `current`:
 * - add: a new index with its identity key (refused: the index is taken; the key is another member's);
 * - remove: an index that leaves (refused: not a member; fewer than 2 members would keep their identity);
 * - replace: a member's new identity key at the same index (repair of a node that lost its data directory).
 * The result is checked as the step to current.epoch + 1 (checkMembershipStep), so what the nodes would refuse is refused here first.
 */
export function nextMembers(
  current: Membership,
  op: { add: MemberSpec } | { remove: number } | { replace: { index: number; identityPublicKey: string | Uint8Array } },
): { members: MemberSpec[]; change: MembershipChange } {
  const have = current.members.map((m) => ({ index: m.index, identityPublicKey: toHex(m.identityPublicKey) }) as MemberSpec);
  const listed = current.members.map((m) => m.index).join(',');
  let members: MemberSpec[];
  if ('add' in op) {
    const index = indexOf(op.add.index, 'index');
    if (have.some((m) => m.index === index)) throw new TesseraClientError('BAD_INPUT', `index ${index} is taken: node ${index} is a member (members: ${listed}); to give it a new identity, replace it`);
    const key = toHex(identityKeyOf(op.add.identityPublicKey, 'identity'));
    const twin = have.find((m) => m.identityPublicKey === key);
    if (twin) throw new TesseraClientError('BAD_INPUT', `identity: that identity key is node ${twin.index}'s`);
    members = [...have, { ...op.add, index, identityPublicKey: key }];
  } else if ('remove' in op) {
    const index = indexOf(op.remove, 'index');
    if (!have.some((m) => m.index === index)) throw new TesseraClientError('BAD_INPUT', `index ${index}: there is no node ${index} in the membership (members: ${listed})`);
    if (have.length - 1 < 2) throw new TesseraClientError('BAD_PARAMETERS', `removing node ${index} would leave ${have.length - 1} member: a cluster keeps at least 2`);
    members = have.filter((m) => m.index !== index);
  } else {
    const index = indexOf(op.replace.index, 'index');
    if (!have.some((m) => m.index === index)) throw new TesseraClientError('BAD_INPUT', `index ${index}: there is no node ${index} in the membership (members: ${listed}); to add a node, use add`);
    const key = toHex(identityKeyOf(op.replace.identityPublicKey, 'identity'));
    const twin = have.find((m) => m.identityPublicKey === key);
    if (twin) {
      throw new TesseraClientError(
        'BAD_INPUT',
        twin.index === index ? `identity: node ${index} already has that identity key (a replaced node comes back with a new one)` : `identity: that identity key is node ${twin.index}'s`,
      );
    }
    members = have.map((m) => (m.index === index ? { ...m, identityPublicKey: key } : m));
  }
  members.sort((a, b) => a.index - b.index);
  const change = checkedStep(current, membershipOf(current.epoch + 1, members));
  return { members, change };
}

/** One node's answer to GET /v1/admin/membership, or why it gave none. */
export type MembershipAnswer = { node: number; membership: Membership; digest: string; committed?: boolean } | { node: number; error: string };

export interface MembershipReport {
  /** Every node that answered holds the same membership at the same epoch (and none failed to answer). */
  agreed: boolean;
  /** The newest epoch any node holds. */
  epoch: number;
  /** The newest membership (the one most nodes at the newest epoch hold). */
  membership?: Membership;
  /** Hex membershipDigest of `membership`. */
  digest?: string;
  nodes: { node: number; epoch?: number; digest?: string; status: 'current' | 'behind' | 'diverged' | 'joining' | 'unreachable'; error?: string }[];
}

/**
 * How the nodes' memberships compare. The newest epoch's most common digest is the cluster's; a node at
 * that epoch with another digest has DIVERGED (it committed another change: never by an honest quorum), a
 * node at a lower epoch is BEHIND (it missed a change: `applyMembership` brings it forward), and `olderDigest`
 * (the digest the newest history holds for that epoch, when known) turns a behind node on another branch into diverged.
 */
export function compareMemberships(answers: readonly MembershipAnswer[], olderDigest?: (epoch: number) => string | undefined): MembershipReport {
  const answered = answers.filter((a): a is Extract<MembershipAnswer, { membership: Membership }> => 'membership' in a);
  // The cluster's epoch: the newest one a node committed (holds its certificate); before any change,
  // the oldest one a node runs from its config file (the cluster's first membership). A node started from
  // its config at a newer epoch than that (the node a change adds or repairs, before the change is
  // committed) is JOINING: its membership is not the cluster's yet, and it says nothing about it.
  const committed = answered.filter((a) => a.committed !== false).map((a) => a.membership.epoch);
  const configured = answered.filter((a) => a.committed === false).map((a) => a.membership.epoch);
  const epoch = committed.length ? Math.max(...committed) : configured.length ? Math.min(...configured) : 0;
  const joining = (a: (typeof answered)[number]) => a.committed === false && a.membership.epoch > epoch;
  const ok = answered.filter((a) => !joining(a));
  const top = ok.filter((a) => a.membership.epoch === epoch);
  const counts = new Map<string, number>();
  for (const a of top) counts.set(a.digest, (counts.get(a.digest) ?? 0) + 1);
  const digest = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
  const membership = top.find((a) => a.digest === digest)?.membership;
  const nodes = answers
    .map((a): MembershipReport['nodes'][number] => {
      if (!('membership' in a)) return { node: a.node, status: 'unreachable', error: a.error };
      const e = a.membership.epoch;
      if (joining(a)) return { node: a.node, epoch: e, digest: a.digest, status: 'joining' };
      const expected = e === epoch ? digest : olderDigest?.(e);
      const status = e === epoch ? (a.digest === digest ? 'current' : 'diverged') : expected !== undefined && expected !== a.digest ? 'diverged' : 'behind';
      return { node: a.node, epoch: e, digest: a.digest, status };
    })
    .sort((a, b) => a.node - b.node);
  return { agreed: nodes.every((n) => n.status === 'current'), epoch, ...(membership ? { membership, digest: digest! } : {}), nodes };
}

/** What a membership change means for every key: who joins (added), who comes back with a new identity (replaced). */
export interface KeyMoveChange {
  /** The new membership's indices. */
  members: readonly number[];
  /** Indices new to the cluster: every key is reshared onto them. */
  added: readonly number[];
  /** Indices whose node has a new identity (lost its data): they cannot deal; the reshare re-deals their share. */
  replaced: readonly number[];
}

/**
 * A key version's committee on the new membership: its old committee without the nodes that left,
 * with the added nodes (replaced indices stay: the reshare re-deals to them as joining receivers).
 */
export function targetCommittee(committee: readonly number[], change: KeyMoveChange): number[] {
  const members = new Set(change.members);
  return [...new Set([...committee.filter((i) => members.has(i)), ...change.added.filter((i) => members.has(i))])].sort((a, b) => a - b);
}

/** What to do with one key version: reshare it (onto `nodes`, dealt by `threshold` of `dealers`), skip it (already there), or report it failed. */
export type KeyPlan = { action: 'reshare'; nodes: number[]; dealers: number[] } | { action: 'skip' } | { action: 'fail'; reason: string };

/**
 * The plan for one key version (`committee`, `threshold`) on the new membership. `replacedHoldsCurrent(i)`
 * says whether replaced node i already holds the key's current epoch (asked of the node itself: a
 * rerun after a crash finds it done). `dealers` are the holders that may deal: still members with their
 * old identity (not replaced, not removed); a reshare needs `threshold` of them that hold the key's
 * current epoch (Cluster.reshareAll asks them).
 */
export function planKeyReshare(key: { committee: readonly number[]; threshold: number }, change: KeyMoveChange, replacedHoldsCurrent: (index: number) => boolean): KeyPlan {
  const nodes = targetCommittee(key.committee, change);
  if (key.threshold > nodes.length) {
    return { action: 'fail', reason: `its threshold ${key.threshold} is above the ${nodes.length} node(s) it would have on the new membership (${nodes.join(',') || 'none'}); reshare it to a lower threshold first (tessera reshare)` };
  }
  const same = nodes.length === key.committee.length && nodes.every((i, k) => i === key.committee[k]);
  const stale = nodes.filter((i) => change.replaced.includes(i) && !replacedHoldsCurrent(i));
  if (same && stale.length === 0) return { action: 'skip' };
  const members = new Set(change.members);
  const dealers = key.committee.filter((i) => members.has(i) && !change.replaced.includes(i));
  if (dealers.length < key.threshold) {
    return { action: 'fail', reason: `only ${dealers.length} of its holders (${dealers.join(',') || 'none'}) are members with their old identity, and ${key.threshold} are needed to deal` };
  }
  return { action: 'reshare', nodes, dealers };
}

/**
 * A cluster file after a membership change: removed nodes gone, added nodes in (their url and API key
 * needed), replaced nodes with their new identity key (and url, API key or ca when given). Nodes in
 * index order; the threshold (the default of new keys) kept, capped at the new node count.
 */
export function clusterFileAfterChange(
  file: ClusterFile,
  change: { added?: readonly MemberSpec[]; removed?: readonly number[]; replaced?: readonly MemberSpec[] },
): ClusterFile {
  const removed = new Set(change.removed ?? []);
  let nodes = file.nodes.filter((n) => !removed.has(n.index)).map((n) => ({ ...n }));
  for (const r of change.replaced ?? []) {
    const at = nodes.find((n) => n.index === r.index);
    if (!at) throw new TesseraClientError('BAD_INPUT', `cluster file: there is no node ${r.index} to replace`);
    at.identityPublicKey = toHex(identityKeyOf(r.identityPublicKey, `node ${r.index}'s identity`));
    if (r.url !== undefined) at.url = r.url;
    if (r.apiKey !== undefined) at.apiKey = r.apiKey;
    if (r.ca !== undefined) at.ca = r.ca;
  }
  for (const a of change.added ?? []) {
    if (a.url === undefined || a.apiKey === undefined) throw new TesseraClientError('BAD_INPUT', `cluster file: node ${a.index} needs its url and API key`);
    const entry: ClusterFile['nodes'][number] = { index: a.index, url: a.url, apiKey: a.apiKey, identityPublicKey: toHex(identityKeyOf(a.identityPublicKey, `node ${a.index}'s identity`)), ...(a.ca !== undefined ? { ca: a.ca } : {}) };
    nodes = [...nodes.filter((n) => n.index !== a.index), entry];
  }
  nodes.sort((a, b) => a.index - b.index);
  if (nodes.length < 2) throw new TesseraClientError('BAD_INPUT', 'cluster file: a cluster keeps at least 2 nodes');
  return { ...file, threshold: Math.min(file.threshold, nodes.length), nodes };
}

/** Write a cluster file atomically: a temp file (mode 0600: it holds API keys) in the same directory, then rename over the old one. */
export function writeClusterFileAtomic(path: string, file: ClusterFile): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not written */
    }
    throw new TesseraClientError('WRITE_FAILED', `${path}: cannot be written (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
