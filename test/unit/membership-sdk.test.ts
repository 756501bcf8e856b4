/**
 * The SDK's pure decisions for membership changes (sdk/membership.ts), and the CLI's refusals of bad
 * input for `tessera cluster ...` (sdk/cli/cluster.ts) before any node is asked: the next member list
 * of an add, remove or replace; how the nodes' memberships compare; each key's target committee and
 * whether a rerun skips it; the cluster file after a change, written atomically.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.js';
import { checkMembership, membershipDigest, type Membership } from '../../core/membership.js';
import { main } from '../../sdk/cli.js';
import { UsageError } from '../../sdk/cli/spec.js';
import { readClusterFile, type ClusterFile } from '../../sdk/cluster-file.js';
import { groupedBy } from '../../sdk/grouping.js';
import {
  clusterFileAfterChange,
  compareMemberships,
  nextMembers,
  planKeyReshare,
  targetCommittee,
  writeClusterFileAtomic,
  type MembershipAnswer,
} from '../../sdk/membership.js';

const key = () => new Uint8Array(randomBytes(1952));
const keys = new Map([1, 2, 3, 4, 5].map((i) => [i, key()] as const));
const membership = (epoch: number, indices: number[], replaced: Record<number, Uint8Array> = {}): Membership =>
  checkMembership({ epoch, members: indices.map((index) => ({ index, identityPublicKey: replaced[index] ?? keys.get(index)! })) });
const answer = (node: number, m: Membership): MembershipAnswer => ({ node, membership: m, digest: toHex(membershipDigest(m)) });
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  return 'no error';
};

describe('nextMembers: the member list of an add, a remove or a replace, checked as the next step', () => {
  const m0 = membership(0, [1, 2, 3]);

  it('add: a new index with its key; the change adds it and every member votes', () => {
    const r = nextMembers(m0, { add: { index: 5, identityPublicKey: keys.get(5)!, url: 'http://127.0.0.1:1', apiKey: 'k' } });
    expect(r.members.map((m) => m.index)).toEqual([1, 2, 3, 5]);
    expect(r.change).toEqual({ unchanged: [1, 2, 3], added: [5], removed: [], replaced: [] });
  });

  it('add refuses a taken index, a key of another member, and a key that is not 1952 bytes of hex', () => {
    expect(code(() => nextMembers(m0, { add: { index: 2, identityPublicKey: key() } }))).toMatch(/^BAD_INPUT: index 2 is taken: node 2 is a member \(members: 1,2,3\)/);
    expect(code(() => nextMembers(m0, { add: { index: 4, identityPublicKey: toHex(keys.get(3)!) } }))).toMatch(/^BAD_INPUT: identity: that identity key is node 3's/);
    expect(code(() => nextMembers(m0, { add: { index: 4, identityPublicKey: 'abcd' } }))).toMatch(/^BAD_INPUT: identity: an ML-DSA-65 identity public key is 1952 bytes, got 2/);
    expect(code(() => nextMembers(m0, { add: { index: 4, identityPublicKey: 'not hex' } }))).toMatch(/^BAD_INPUT: identity: expected the node's ML-DSA-65 identity public key in hex/);
    expect(code(() => nextMembers(m0, { add: { index: 256, identityPublicKey: key() } }))).toMatch(/^BAD_INPUT: index: expected a node index 1\.\.255/);
  });

  it('remove: the others vote; an unknown index and going below 2 voters are refused', () => {
    expect(nextMembers(m0, { remove: 2 }).change).toEqual({ unchanged: [1, 3], added: [], removed: [2], replaced: [] });
    expect(code(() => nextMembers(m0, { remove: 4 }))).toMatch(/^BAD_INPUT: index 4: there is no node 4 in the membership \(members: 1,2,3\)/);
    expect(code(() => nextMembers(membership(3, [1, 2]), { remove: 1 }))).toMatch(/^BAD_PARAMETERS: removing node 1 would leave 1 member/);
    // Replacing one of two leaves one voter: core's step check refuses it.
    expect(code(() => nextMembers(membership(0, [1, 2]), { replace: { index: 2, identityPublicKey: key() } }))).toMatch(/^BAD_PARAMETERS: membership: a change must keep at least 2 members/);
  });

  it('replace (repair): same index, new key; the node itself does not vote; its own old key or an unknown index are refused', () => {
    const fresh = key();
    const r = nextMembers(m0, { replace: { index: 3, identityPublicKey: toHex(fresh) } });
    expect(r.change).toEqual({ unchanged: [1, 2], added: [], removed: [], replaced: [3] });
    expect(r.members.find((m) => m.index === 3)!.identityPublicKey).toBe(toHex(fresh));
    expect(code(() => nextMembers(m0, { replace: { index: 3, identityPublicKey: keys.get(3)! } }))).toMatch(/node 3 already has that identity key/);
    expect(code(() => nextMembers(m0, { replace: { index: 7, identityPublicKey: key() } }))).toMatch(/^BAD_INPUT: index 7: there is no node 7/);
  });
});

describe('compareMemberships: agreement, laggards and divergence', () => {
  const m1 = membership(1, [1, 2, 3, 4]);
  const m0 = membership(0, [1, 2, 3]);

  it('every node at the same membership agrees', () => {
    const r = compareMemberships([answer(1, m1), answer(2, m1), answer(3, m1)]);
    expect(r).toMatchObject({ agreed: true, epoch: 1, digest: toHex(membershipDigest(m1)) });
    expect(r.nodes.map((n) => n.status)).toEqual(['current', 'current', 'current']);
  });

  it('a node at a lower epoch is behind; one without an answer is unreachable; another membership at the newest epoch diverged', () => {
    const other = membership(1, [1, 2, 3, 5]);
    const r = compareMemberships([answer(1, m1), answer(2, m1), answer(3, m0), { node: 4, error: 'UNAVAILABLE: down' }, answer(5, other)]);
    expect(r.agreed).toBe(false);
    expect(r.membership!.members.map((m) => m.index)).toEqual([1, 2, 3, 4]);
    expect(r.nodes.map((n) => [n.node, n.status])).toEqual([
      [1, 'current'],
      [2, 'current'],
      [3, 'behind'],
      [4, 'unreachable'],
      [5, 'diverged'],
    ]);
  });

  it('a node behind on another branch (its epoch\'s digest is not the history\'s) diverged', () => {
    const m2 = membership(2, [1, 2, 4]);
    const r = compareMemberships([answer(1, m2), answer(2, m1), answer(3, membership(1, [1, 2, 3, 5]))], (e) => (e === 1 ? toHex(membershipDigest(m1)) : undefined));
    expect(r.nodes.map((n) => n.status)).toEqual(['current', 'behind', 'diverged']);
  });
});

describe('each key version on the new membership: target committee, skip on rerun, clear failures', () => {
  it('target: the old committee without the nodes that left, with the added ones; replaced indices stay', () => {
    expect(targetCommittee([1, 2, 3], { members: [1, 2, 3, 4], added: [4], replaced: [] })).toEqual([1, 2, 3, 4]);
    expect(targetCommittee([1, 2, 3, 4], { members: [1, 3, 4], added: [], replaced: [] })).toEqual([1, 3, 4]);
    expect(targetCommittee([2, 3], { members: [1, 2, 3, 5], added: [5], replaced: [3] })).toEqual([2, 3, 5]);
  });

  it('reshare, dealt by holders still members with their old identity; skip once there (resume)', () => {
    expect(planKeyReshare({ committee: [1, 2, 3], threshold: 2 }, { members: [1, 2, 3, 4], added: [4], replaced: [] }, () => false)).toEqual({ action: 'reshare', nodes: [1, 2, 3, 4], dealers: [1, 2, 3] });
    expect(planKeyReshare({ committee: [1, 2, 3, 4], threshold: 2 }, { members: [1, 2, 3, 4], added: [4], replaced: [] }, () => false)).toEqual({ action: 'skip' });
    // Removal: the removed node neither stays nor deals.
    expect(planKeyReshare({ committee: [1, 2, 3, 4], threshold: 3 }, { members: [1, 3, 4], added: [], replaced: [] }, () => false)).toEqual({ action: 'reshare', nodes: [1, 3, 4], dealers: [1, 3, 4] });
  });

  it('replaced: re-dealt onto the same committee by the others until the node holds the current epoch', () => {
    const change = { members: [1, 3, 4], added: [], replaced: [3] };
    expect(planKeyReshare({ committee: [1, 3, 4], threshold: 2 }, change, () => false)).toEqual({ action: 'reshare', nodes: [1, 3, 4], dealers: [1, 4] });
    expect(planKeyReshare({ committee: [1, 2, 3, 4], threshold: 2 }, { members: [1, 2, 3, 4], added: [], replaced: [2] }, () => false)).toEqual({ action: 'reshare', nodes: [1, 2, 3, 4], dealers: [1, 3, 4] });
    expect(planKeyReshare({ committee: [1, 3, 4], threshold: 2 }, change, (i) => i === 3)).toEqual({ action: 'skip' });
    // A key the replaced node never held is not moved onto it.
    expect(planKeyReshare({ committee: [1, 4], threshold: 2 }, change, () => false)).toEqual({ action: 'skip' });
  });

  it('fails (with the reason) a key whose threshold is above its new committee, or without enough dealers', () => {
    const tooHigh = planKeyReshare({ committee: [1, 2, 3], threshold: 3 }, { members: [1, 3], added: [], replaced: [] }, () => false);
    expect(tooHigh).toMatchObject({ action: 'fail' });
    expect((tooHigh as { reason: string }).reason).toMatch(/its threshold 3 is above the 2 node\(s\) it would have on the new membership \(1,3\)/);
    const fewDealers = planKeyReshare({ committee: [1, 2, 3], threshold: 3 }, { members: [1, 2, 3, 4], added: [4], replaced: [2] }, () => false);
    expect((fewDealers as { reason: string }).reason).toMatch(/only 2 of its holders \(1,3\) are members with their old identity, and 3 are needed to deal/);
  });
});

describe('the cluster file after a change, written atomically', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-membership-sdk-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file: ClusterFile = {
    coordinator: 'http://127.0.0.1:7700',
    threshold: 2,
    nodes: [1, 2, 3].map((index) => ({ index, url: `http://127.0.0.1:${7700 + index}`, apiKey: `key-${index}`, identityPublicKey: toHex(keys.get(index)!) })),
  };

  it('adds, removes and replaces nodes (index order kept; the threshold capped at the node count)', () => {
    const fresh = key();
    const after = clusterFileAfterChange(file, {
      added: [{ index: 5, url: 'http://127.0.0.1:7705', apiKey: 'key-5', identityPublicKey: keys.get(5)! }],
      removed: [2],
      replaced: [{ index: 3, identityPublicKey: fresh, apiKey: 'key-3b' }],
    });
    expect(after.nodes.map((n) => [n.index, n.apiKey])).toEqual([
      [1, 'key-1'],
      [3, 'key-3b'],
      [5, 'key-5'],
    ]);
    expect(after.nodes[1]!.identityPublicKey).toBe(toHex(fresh));
    expect(after.nodes[1]!.url).toBe('http://127.0.0.1:7703');
    expect(after.threshold).toBe(2);
    expect(clusterFileAfterChange({ ...file, threshold: 3 }, { removed: [2] }).threshold).toBe(2);
    // The same addition again (a rerun) replaces the entry instead of listing the node twice.
    expect(clusterFileAfterChange(after, { added: [{ index: 5, url: 'http://127.0.0.1:7705', apiKey: 'key-5', identityPublicKey: keys.get(5)! }] }).nodes.map((n) => n.index)).toEqual([1, 3, 5]);
    expect(code(() => clusterFileAfterChange(file, { added: [{ index: 6, identityPublicKey: key() }] }))).toMatch(/node 6 needs its url and API key/);
    expect(code(() => clusterFileAfterChange(file, { removed: [1, 2] }))).toMatch(/at least 2 nodes/);
  });

  it('writes mode 0600 through a temp file and a rename; the file with a gap reads back', () => {
    const path = join(dir, 'cluster.json');
    writeFileSync(path, JSON.stringify(file), { mode: 0o644 });
    const after = clusterFileAfterChange(file, { removed: [2] });
    writeClusterFileAtomic(path, after);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['cluster.json']);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(after);
    expect(readClusterFile(path).nodes.map((n) => n.index)).toEqual([1, 3]);
    expect(code(() => writeClusterFileAtomic(join(dir, 'no-such-dir', 'c.json'), after))).toMatch(/^WRITE_FAILED: .*cannot be written \(ENOENT\)/);
  });
});

describe('tessera cluster ...: bad command lines are usage errors naming the flag, before any node is asked', () => {
  const usage = async (argv: string[], pattern: RegExp) => {
    const e = await main(argv).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e, argv.join(' ')).toBeInstanceOf(UsageError);
    expect((e as Error).message).toMatch(pattern);
  };
  const hex = toHex(key());

  it('add-node', async () => {
    await usage(['cluster', 'add-node', '--url', 'http://127.0.0.1:1', '--api-key', 'k', '--identity', hex], /--index is required/);
    await usage(['cluster', 'add-node', '--index', '0', '--url', 'http://127.0.0.1:1', '--api-key', 'k', '--identity', hex], /--index: expected 1\.\.255, got 0/);
    await usage(['cluster', 'add-node', '--index', '4', '--url', 'http://127.0.0.1:1', '--api-key', 'k'], /--identity HEX or --identity-file FILE/);
    await usage(['cluster', 'add-node', '--index', '4', '--url', 'http://127.0.0.1:1', '--api-key', 'k', '--identity', 'zz'], /--identity: expected hex/);
    await usage(['cluster', 'add-node', '--index', '4', '--url', 'http://127.0.0.1:1', '--api-key', 'k', '--identity', 'abcd'], /--identity: an ML-DSA-65 identity public key is 1952 bytes, got 2/);
    await usage(['cluster', 'add-node', '--index', '4', '--url', 'http://127.0.0.1:1', '--api-key', 'k', '--identity', hex, '--identity-file', 'x'], /not both/);
    await usage(['cluster', 'add-node', '--index', '4', '--url', 'ftp://x', '--api-key', 'k', '--identity', hex], /--url: expected http:\/\/ or https:\/\//);
    await usage(['cluster', 'add-node', '--index', '4', '--url', 'http://127.0.0.1:1', '--api-key', 'k', '--identity-file', '/no/such/file'], /--identity-file: \/no\/such\/file: no such file/);
  });

  it('remove-node, replace-node and reshare-all', async () => {
    await usage(['cluster', 'remove-node'], /--index is required/);
    await usage(['cluster', 'remove-node', '--index', 'two'], /--index: expected a whole number/);
    await usage(['cluster', 'replace-node', '--index', '3'], /--identity HEX or --identity-file FILE/);
    await usage(['cluster', 'reshare-all', '--concurrency', '0'], /--concurrency: expected 1\.\.64, got 0/);
    await usage(['cluster', 'frobnicate'], /unknown subcommand "frobnicate" of tessera cluster/);
  });
});

describe('reshareAll scheduling (groupedBy)', () => {
  it('puts the versions of one key in one group, in order, so they are reshared one after another', () => {
    const work = [
      { tenant: 'default', keyId: 'a', version: 1 },
      { tenant: 'default', keyId: 'a', version: 2 },
      { tenant: 'acme', keyId: 'a', version: 1 },
      { tenant: 'default', keyId: 'b', version: 1 },
      { tenant: 'default', keyId: 'a', version: 3 },
    ];
    expect(groupedBy(work, (w) => `${w.tenant}\0${w.keyId}`)).toEqual([
      [work[0], work[1], work[4]],
      [work[2]],
      [work[3]],
    ]);
    expect(groupedBy([], () => 'x')).toEqual([]);
  });
});
