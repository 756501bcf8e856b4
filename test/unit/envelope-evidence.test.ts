/**
 * Signed channel envelopes as transferable evidence (core/evidence.ts EnvelopeEvidence): a third party
 * holding only the culprit's identity public key, the session id and the operation's rounds
 * (core/session.ts declaredRounds) can check that the node signed what an honest node never signs.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { envelopeSignedBytes, type EnvelopeFields } from '../../core/envelope.js';
import { verifyEquivocationEvidence, type EnvelopeEvidence, type SignedEnvelope } from '../../core/evidence.js';
import { generateIdentity, identitySign } from '../../core/identity.js';
import { declaredRounds } from '../../core/session.js';

const culprit = generateIdentity();
const other = generateIdentity();
const session = Uint8Array.from(randomBytes(16));
const context = { session, declaredRounds: declaredRounds('keygen', 'ed25519') };

function signed(fields: Partial<EnvelopeFields> = {}, who = culprit): SignedEnvelope {
  const env: EnvelopeFields = { r: 'flood/1', f: 3, t: 1, k: 'data', e: new Uint8Array(), n: Uint8Array.from(randomBytes(12)), c: Uint8Array.from(randomBytes(40)), ...fields };
  return { ...env, s: identitySign(who.secretKey, envelopeSignedBytes(session, env)) };
}

const undeclared = (env: SignedEnvelope, s = session): EnvelopeEvidence => ({ protocol: 'envelope', fault: 'undeclared-round', signer: 3, session: s, envelopes: [env] });

describe('envelope evidence', () => {
  it('an envelope the culprit signed under a round the operation does not run proves it; nothing else does', () => {
    expect(verifyEquivocationEvidence(undeclared(signed()), culprit.publicKey, context)).toBe(true);
    // A round keygen does run, another signer's key, another session, a forged signature, a tampered
    // field, a hello, or no context: not evidence.
    expect(verifyEquivocationEvidence(undeclared(signed({ r: 'dkg/round1' })), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared(signed()), other.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared(signed()), culprit.publicKey, { ...context, session: Uint8Array.from(randomBytes(16)) })).toBe(false);
    expect(verifyEquivocationEvidence(undeclared(signed({}, other)), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared({ ...signed(), r: 'flood/2' }), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared(signed({ k: 'hello', r: 'hello' })), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared(signed({ f: 2 })), culprit.publicKey, context)).toBe(false);
    expect(verifyEquivocationEvidence(undeclared(signed()), culprit.publicKey)).toBe(false);
    expect(verifyEquivocationEvidence({ ...undeclared(signed()), envelopes: [] }, culprit.publicKey, context)).toBe(false);
  });

  it('two different envelopes for one round to one receiver prove it; one envelope twice does not', () => {
    const a = signed({ r: 'dkg/round2' });
    const b = signed({ r: 'dkg/round2' });
    const two = (x: SignedEnvelope, y: SignedEnvelope): EnvelopeEvidence => ({ protocol: 'envelope', fault: 'two-messages', signer: 3, session, envelopes: [x, y] });
    expect(verifyEquivocationEvidence(two(a, b), culprit.publicKey, { session })).toBe(true);
    expect(verifyEquivocationEvidence(two(a, a), culprit.publicKey, { session })).toBe(false);
    expect(verifyEquivocationEvidence(two(a, signed({ r: 'dkg/echo' })), culprit.publicKey, { session })).toBe(false);
    expect(verifyEquivocationEvidence(two(a, signed({ r: 'dkg/round2', t: 2 })), culprit.publicKey, { session })).toBe(false);
    expect(verifyEquivocationEvidence(two(a, b), other.publicKey, { session })).toBe(false);
  });
});
