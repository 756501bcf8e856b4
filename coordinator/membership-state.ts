/**
 * The coordinator's cluster membership and its chain of certified changes (issue 13 item 2: "the
 * coordinator's and the nodes' membership change only by this path").
 *
 * The config's membership file is the starting point (epoch 0 unless the file says `epoch`). Every
 * later membership comes from a node's `membership` frame (contract/relay.ts) and is adopted only when
 * its certificate verifies against the membership the coordinator holds (core/membership.ts
 * verifyMembershipChange): the coordinator believes no node, only the votes of the members the change
 * keeps. The chain of adopted changes is kept in a state file (config `membershipStateFile`) written
 * durably before a change is used, and replayed, every link verified again, when the coordinator starts.
 *
 * State file (JSON, nothing secret in it: memberships are public keys, certificates are signatures):
 *   { "format": "tessera/coordinator-membership/v1",
 *     "changes": [ { "membership": "<hex encodeMembership>", "certificate": "<hex encodeCertificate>" }, ... ] }
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fromHex, toHex } from '../core/bytes.js';
import { decodeCertificate } from '../core/commit.js';
import { type Membership, type MembershipChange, decodeMembership, verifyMembershipChange } from '../core/membership.js';
import type { MembershipChangeBytes } from '../contract/relay.js';
import { ConfigError } from './config.js';

export const MEMBERSHIP_STATE_FORMAT = 'tessera/coordinator-membership/v1';

/**
 * The membership a config gives: its members as listed, sorted by index. Not checked against
 * core/membership.ts checkMembership here (a coordinator may serve a single configured node); a
 * membership that rule refuses simply admits no change (verifyMembershipChange refuses it).
 */
export function configMembership(epoch: number, members: ReadonlyMap<number, Uint8Array>): Membership {
  return {
    epoch,
    members: [...members].sort((a, b) => a[0] - b[0]).map(([index, identityPublicKey]) => ({ index, identityPublicKey: Uint8Array.from(identityPublicKey) })),
  };
}

export interface AdoptedChange {
  readonly bytes: MembershipChangeBytes;
  readonly membership: Membership;
  readonly change: MembershipChange;
}

export interface ChainResult {
  /** The changes that follow `from` and verify, in order (a prefix of the chain's new links). */
  readonly adopted: AdoptedChange[];
  /** The membership after them (`from` when none). */
  readonly membership: Membership;
  /** Links at or below the epoch already held: ignored. */
  readonly ignored: number;
  /** Why the chain stopped before its end, when it did (one line, no key material). */
  readonly problem?: string;
}

/**
 * Walk a chain of changes from `from`: links at or below the current epoch are ignored, the next
 * epoch is adopted only when its certificate verifies, and the walk stops at the first link that does
 * not decode, skips an epoch or does not verify (nothing after it can follow a membership not held).
 * Decoding is strict and comes before any signature check; nothing here throws.
 */
export function followMembershipChain(from: Membership, changes: readonly MembershipChangeBytes[]): ChainResult {
  const adopted: AdoptedChange[] = [];
  let current = from;
  let ignored = 0;
  for (let i = 0; i < changes.length; i++) {
    const bytes = changes[i]!;
    const at = `change ${i + 1} of ${changes.length}`;
    let next: Membership;
    try {
      next = decodeMembership(bytes.membership);
    } catch (e) {
      return { adopted, membership: current, ignored, problem: `${at}: ${oneLine(e)}` };
    }
    if (next.epoch <= current.epoch) {
      ignored++;
      continue;
    }
    if (next.epoch !== current.epoch + 1) {
      return { adopted, membership: current, ignored, problem: `${at}: epoch ${next.epoch} does not follow the held epoch ${current.epoch}` };
    }
    try {
      const change = verifyMembershipChange(current, next, decodeCertificate(bytes.certificate));
      adopted.push({ bytes, membership: next, change });
      current = next;
    } catch (e) {
      return { adopted, membership: current, ignored, problem: `${at} (epoch ${next.epoch}): ${oneLine(e)}` };
    }
  }
  return { adopted, membership: current, ignored };
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
}

/**
 * Load a state file and replay it from the config's membership, verifying every link. A missing file
 * is a first start (nothing adopted yet); anything else that is wrong refuses the start with a
 * ConfigError naming the file (coordinator/main.ts exits 2), since a coordinator that silently fell
 * back to an older membership would admit removed nodes again.
 */
export function loadMembershipState(path: string, base: Membership): { membership: Membership; chain: MembershipChangeBytes[] } {
  const fail = (why: string): never => {
    throw new ConfigError('membershipStateFile', `${path}: ${why}`);
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { membership: base, chain: [] };
    return fail(`cannot read it (${code ?? 'error'})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return fail('not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('expected a JSON object');
  const o = doc as Record<string, unknown>;
  if (Object.keys(o).sort().join(',') !== 'changes,format' || o.format !== MEMBERSHIP_STATE_FORMAT) {
    return fail(`expected { "format": "${MEMBERSHIP_STATE_FORMAT}", "changes": [...] }`);
  }
  if (!Array.isArray(o.changes)) return fail('changes: expected a list');
  const changes = o.changes.map((c: unknown, i: number): MembershipChangeBytes => {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) return fail(`changes[${i}]: expected an object`);
    const r = c as Record<string, unknown>;
    if (Object.keys(r).sort().join(',') !== 'certificate,membership') return fail(`changes[${i}]: expected { membership, certificate }`);
    try {
      return { membership: fromHex(r.membership, 'membership'), certificate: fromHex(r.certificate, 'certificate') };
    } catch (e) {
      return fail(`changes[${i}]: ${oneLine(e)}`);
    }
  });
  const result = followMembershipChain(base, changes);
  if (result.problem) fail(`${result.problem.replace(/^change (\d+) of \d+/, 'change $1')} (the file does not follow from the configured membership)`);
  return { membership: result.membership, chain: result.adopted.map((a) => a.bytes) };
}

/** The state file's text for a chain. */
export function membershipStateText(chain: readonly MembershipChangeBytes[]): string {
  return `${JSON.stringify({ format: MEMBERSHIP_STATE_FORMAT, changes: chain.map((c) => ({ membership: toHex(c.membership), certificate: toHex(c.certificate) })) })}\n`;
}

/**
 * Replace `path` with `text` so that a crash leaves either the old file or the new one, both whole:
 * write a temporary file in the same directory, fsync it, rename it over `path`, then fsync the
 * directory so the rename itself is on disk (POSIX rename(2) is atomic, but durable only once the
 * directory entry is flushed).
 */
export function writeFileDurably(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    try {
      const data = Buffer.from(text, 'utf8');
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already renamed or never written */
    }
    throw e;
  }
  let dir: number | undefined;
  try {
    dir = openSync(dirname(path), 'r');
    fsyncSync(dir);
  } catch {
    /* some file systems cannot fsync a directory; the rename is still atomic */
  } finally {
    if (dir !== undefined) closeSync(dir);
  }
}
