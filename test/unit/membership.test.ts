/**
 * core/membership.ts: cluster membership, its digest, the change rules and the certificate check that
 * the coordinator and every node use before they adopt a membership (issue 13, item 2).
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeCertificate, decodeCertificate, voteBytes, type CommitCertificate } from '../../core/commit.js';
import { generateIdentity, identitySign, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import {
  MEMBERSHIP_KEY_ID,
  MEMBERSHIP_TENANT,
  checkMembership,
  checkMembershipStep,
  decodeMembership,
  diffMembership,
  encodeMembership,
  membershipDigest,
  membershipFromJson,
  membershipToJson,
  membershipVoters,
  verifyMembershipChange,
  type Membership,
} from '../../core/membership.js';
import { thrown } from '../helpers/thrown.js';

let ids: IdentityKeyPair[];
let m0: Membership;

beforeAll(async () => {
  await loadIdentityEngine();
  ids = Array.from({ length: 6 }, () => generateIdentity());
  m0 = { epoch: 0, members: [1, 2, 3, 4].map((index) => ({ index, identityPublicKey: ids[index - 1]!.publicKey })) };
});

/** A certificate of the change to `to`, signed by `voters` (their identities from `ids`, by index). */
function certify(to: Membership, voters: number[], over: Partial<CommitCertificate> = {}): CommitCertificate {
  const statement = {
    session: Uint8Array.from(randomBytes(16)),
    operation: 'membership' as const,
    tenant: MEMBERSHIP_TENANT,
    keyId: MEMBERSHIP_KEY_ID,
    version: to.epoch,
    resultDigest: membershipDigest(to),
    ...over,
  };
  const bytes = voteBytes(statement);
  return { ...statement, votes: new Map(voters.map((v) => [v, identitySign(ids[v - 1]!.secretKey, bytes)] as const)), ...(over.votes ? { votes: over.votes } : {}) };
}

const add5 = (): Membership => ({ epoch: 1, members: [...m0.members, { index: 5, identityPublicKey: ids[4]!.publicKey }] });
const remove2 = (): Membership => ({ epoch: 1, members: m0.members.filter((m) => m.index !== 2) });
const replace3 = (): Membership => ({ epoch: 1, members: m0.members.map((m) => (m.index === 3 ? { index: 3, identityPublicKey: ids[5]!.publicKey } : m)) });

describe('checkMembership', () => {
  it('sorts by index and copies; accepts gaps', () => {
    const m = checkMembership({ epoch: 3, members: [m0.members[2]!, m0.members[0]!] });
    expect(m.members.map((x) => x.index)).toEqual([1, 3]);
    expect(m.members[0]!.identityPublicKey).not.toBe(m0.members[0]!.identityPublicKey);
  });
  it('refuses duplicates, bad indices, bad keys, too few members and bad epochs, naming the problem', () => {
    const k = m0.members[0]!.identityPublicKey;
    expect(thrown(() => checkMembership({ epoch: 0, members: [m0.members[0]!, { index: 1, identityPublicKey: ids[1]!.publicKey }] })).message).toMatch(/node 1 is listed twice/);
    expect(thrown(() => checkMembership({ epoch: 0, members: [m0.members[0]!, { index: 2, identityPublicKey: k }] })).message).toMatch(/another member's/);
    expect(thrown(() => checkMembership({ epoch: 0, members: [m0.members[0]!, { index: 256, identityPublicKey: ids[1]!.publicKey }] })).message).toMatch(/index 256/);
    expect(thrown(() => checkMembership({ epoch: 0, members: [m0.members[0]!, { index: 2, identityPublicKey: k.subarray(1) }] })).message).toMatch(/1952 bytes/);
    expect(thrown(() => checkMembership({ epoch: 0, members: [m0.members[0]!] })).message).toMatch(/2\.\.255 members/);
    expect(thrown(() => checkMembership({ epoch: -1, members: m0.members })).message).toMatch(/epoch/);
    expect(thrown(() => checkMembership({ epoch: 1.5, members: m0.members })).code).toBe('BAD_INPUT');
  });
});

describe('membershipDigest', () => {
  it('is independent of member order and binds the epoch, every index and every key', () => {
    const d = membershipDigest(m0);
    expect(membershipDigest({ epoch: 0, members: [...m0.members].reverse() })).toEqual(d);
    expect(membershipDigest({ ...m0, epoch: 1 })).not.toEqual(d);
    expect(membershipDigest(replace3())).not.toEqual(membershipDigest({ ...replace3(), epoch: 0 }));
    expect(membershipDigest({ epoch: 0, members: m0.members.map((m) => (m.index === 4 ? { ...m, index: 9 } : m)) })).not.toEqual(d);
  });
});

describe('diffMembership and checkMembershipStep', () => {
  it('names what an add, a removal and a replaced identity change; the voters are the kept members', () => {
    expect(diffMembership(m0, add5())).toEqual({ unchanged: [1, 2, 3, 4], added: [5], removed: [], replaced: [] });
    expect(diffMembership(m0, remove2())).toEqual({ unchanged: [1, 3, 4], added: [], removed: [2], replaced: [] });
    expect(diffMembership(m0, replace3())).toEqual({ unchanged: [1, 2, 4], added: [], removed: [], replaced: [3] });
    expect(membershipVoters(m0, replace3())).toEqual([1, 2, 4]);
  });
  it('refuses the wrong epoch, no change, and a change that keeps fewer than 2 members', () => {
    expect(thrown(() => checkMembershipStep(m0, { ...add5(), epoch: 2 })).code).toBe('EPOCH_MISMATCH');
    expect(thrown(() => checkMembershipStep(m0, { ...m0, epoch: 1 })).message).toMatch(/is the current one/);
    const two = { epoch: 0, members: m0.members.slice(0, 2) };
    const keepsOne = { epoch: 1, members: [two.members[0]!, { index: 2, identityPublicKey: ids[5]!.publicKey }] };
    expect(thrown(() => checkMembershipStep(two, keepsOne)).message).toMatch(/at least 2 members/);
  });
});

describe('verifyMembershipChange', () => {
  it('accepts a certificate with a valid vote of exactly every kept member', () => {
    for (const to of [add5(), remove2(), replace3()]) {
      const voters = membershipVoters(m0, to);
      const cert = decodeCertificate(encodeCertificate(certify(to, voters)));
      expect(verifyMembershipChange(m0, to, cert).unchanged).toEqual(voters);
    }
  });
  it('refuses a missing voter, an extra voter (the added, removed or replaced node), a forged vote, another membership, another epoch or operation', () => {
    const to = add5();
    const bad = (cert: CommitCertificate) => thrown(() => verifyMembershipChange(m0, to, cert));
    expect(bad(certify(to, [1, 2, 3])).code).toBe('VERIFICATION_FAILED');
    // Node 5 (being added) has no vote; a removed node 2 cannot vote itself out either.
    expect(bad(certify(to, [1, 2, 3, 4, 5])).code).toBe('VERIFICATION_FAILED');
    expect(thrown(() => verifyMembershipChange(m0, remove2(), certify(remove2(), [1, 2, 3, 4]))).code).toBe('VERIFICATION_FAILED');
    const forged = certify(to, [1, 2, 3, 4]);
    const votes = new Map(forged.votes);
    votes.set(4, identitySign(ids[5]!.secretKey, voteBytes(forged)));
    expect(bad({ ...forged, votes }).message).toMatch(/node 4's vote does not verify/);
    expect(bad(certify(to, [1, 2, 3, 4], { resultDigest: membershipDigest(remove2()) })).message).toMatch(/another membership/);
    expect(bad(certify(to, [1, 2, 3, 4], { version: 2 })).message).toMatch(/epoch 2/);
    expect(bad(certify(to, [1, 2, 3, 4], { operation: 'refresh' })).message).toMatch(/not a membership change/);
    expect(bad(certify(to, [1, 2, 3, 4], { tenant: 'acme' })).message).toMatch(/not a membership change/);
  });
  it('a chain: the next change is checked against the membership the previous one made', () => {
    const m1 = add5();
    const m2: Membership = { epoch: 2, members: m1.members.filter((m) => m.index !== 1) };
    const cert = certify(m2, [2, 3, 4, 5]);
    expect(verifyMembershipChange(m1, m2, cert).removed).toEqual([1]);
    expect(thrown(() => verifyMembershipChange(m0, m2, cert)).code).toBe('EPOCH_MISMATCH');
  });
});

describe('encodings', () => {
  it('bytes and JSON round-trip; decoding is strict', () => {
    const m = replace3();
    expect(membershipDigest(decodeMembership(encodeMembership(m)))).toEqual(membershipDigest(m));
    expect(membershipDigest(membershipFromJson(membershipToJson(m)))).toEqual(membershipDigest(m));
    expect(thrown(() => decodeMembership(new Uint8Array([1, 2, 3]))).code).toBe('BAD_MESSAGE');
    expect(thrown(() => decodeMembership(new Uint8Array())).code).toBe('BAD_MESSAGE');
    expect(thrown(() => membershipFromJson({ ...membershipToJson(m), extra: 1 })).message).toMatch(/unexpected fields/);
    expect(thrown(() => membershipFromJson({ epoch: 1, members: [{ index: 1, identityPublicKey: 'zz' }] })).code).toBe('BAD_INPUT');
    expect(thrown(() => membershipFromJson({ epoch: '1', members: membershipToJson(m).members })).code).toBe('BAD_INPUT');
  });
});
