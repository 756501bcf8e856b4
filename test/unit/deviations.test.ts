/**
 * The malicious-node harness's script (node/sessions/deviations.ts, TESSERA_TEST_DEVIATIONS): every
 * deviation parses, anything else is refused with a clear error, and the message tampering does what
 * it says (a bad share fails the receiver's check against the sender's commitments; a wrong vote is
 * validly signed over another statement; a garbage vote verifies under nothing). The deviations in real
 * clusters: test/integration/malicious.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { voteBytes, type CommitStatement } from '../../core/commit.js';
import { generateIdentity, identityVerify } from '../../core/identity.js';
import { commitPolynomial, evalPolynomial, randomPolynomial, verifyShareAgainstCommitments } from '../../core/shamir.js';
import { getSuite } from '../../core/suites.js';
import { FLOOD_MESSAGES, badShare, floodRounds, parseDeviations, voteFor } from '../../node/sessions/deviations.js';

describe('TESSERA_TEST_DEVIATIONS', () => {
  it('parses every deviation, and nothing when unset', () => {
    expect(parseDeviations(undefined)).toBeUndefined();
    expect(parseDeviations('  ')).toBeUndefined();
    expect(
      parseDeviations(
        'wrong-confirm-to:2,withhold-vote-to:1+2,claim-epoch-ahead,equivocate-dkg-to:1,equivocate-sign-to:2+4,bad-share-to:3,wrong-vote-to:1,garbage-vote-to:2,flood-messages-to:1,flood-bytes-to:5',
      ),
    ).toEqual({
      wrongConfirmTo: [2],
      withholdVote: [1, 2],
      claimEpochAhead: true,
      equivocateDkgTo: [1],
      equivocateSignTo: [2, 4],
      badShareTo: [3],
      wrongVoteTo: [1],
      garbageVoteTo: [2],
      floodMessagesTo: [1],
      floodBytesTo: [5],
    });
  });

  it.each(['equivocate', 'bad-share-to', 'bad-share-to:', 'bad-share-to:0', 'bad-share-to:x', 'bad-share-to:1:2', 'claim-epoch-ahead:1', 'flood-bytes-to:256'])(
    'refuses %j with a clear error',
    (env) => {
      expect(() => parseDeviations(env)).toThrow(/TESSERA_TEST_DEVIATIONS/);
    },
  );

  it('flood-messages declares its own flood rounds only when set', () => {
    expect(floodRounds(undefined)).toEqual([]);
    expect(floodRounds({ badShareTo: [1] })).toEqual([]);
    const rounds = floodRounds({ floodMessagesTo: [1] });
    expect(rounds).toHaveLength(FLOOD_MESSAGES);
    expect(new Set(rounds).size).toBe(FLOOD_MESSAGES);
  });

  it('a bad share is a canonical scalar that fails the check against the dealer commitments', () => {
    const { group } = getSuite('ed25519');
    const poly = randomPolynomial(group, group.randomScalar(), 2);
    const commitments = commitPolynomial(group, poly);
    const good = { share: group.scalarToBytes(evalPolynomial(group, poly, 2n)) };
    expect(verifyShareAgainstCommitments(group, 2, group.scalarFromBytes(good.share, 'share'), commitments)).toBe(true);
    const bad = badShare('ed25519', good);
    expect(bad.share).toHaveLength(group.scalarLength);
    expect(verifyShareAgainstCommitments(group, 2, group.scalarFromBytes(bad.share, 'share', true), commitments)).toBe(false);
  });

  it('votes: withheld, signed over another result digest, garbage, or the real one to everyone else', () => {
    const id = generateIdentity();
    const s: CommitStatement = { session: new Uint8Array(16).fill(7), operation: 'refresh', tenant: 'default', keyId: 'k', version: 1, resultDigest: new Uint8Array(32).fill(1) };
    const real = new Uint8Array([1, 2, 3]);
    const d = { withholdVote: [2], wrongVoteTo: [3], garbageVoteTo: [4] };
    expect(voteFor(d, 2, real, id, s)).toBeUndefined();
    expect(voteFor(d, 5, real, id, s)).toBe(real);
    const wrong = voteFor(d, 3, real, id, s)!;
    expect(identityVerify(id.publicKey, voteBytes(s), wrong)).toBe(false);
    const garbage = voteFor(d, 4, real, id, s)!;
    expect(identityVerify(id.publicKey, voteBytes(s), garbage)).toBe(false);
  });
});
