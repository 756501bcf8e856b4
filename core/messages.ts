/**
 * Every message that core/ protocols send to another party. These are the *sent* types; secret round
 * state lives in each protocol module under its own types and never appears here.
 *
 * No message carries its sender: the sender comes from the authenticated channel (node/ and
 * coordinator/), and protocol functions receive messages keyed by sender index. Point and scalar
 * fields hold canonical encodings for the session's suite; core/wire.ts encodes and strictly decodes
 * them (versioned msgpack).
 */

/** DKG round 1 broadcast (also the refresh round 1 broadcast, with `proof` empty). */
export interface DkgRound1Msg {
  /**
   * Feldman commitments C_0..C_{t-1} to the dealer's polynomial. For refresh the dealer's constant
   * term is zero, so C_0 (the identity) is omitted and the list holds C_1..C_{t-1}.
   */
  readonly commitments: Uint8Array[];
  /** Schnorr proof of knowledge of the constant term: R || z (empty for refresh). */
  readonly proof: Uint8Array;
  /**
   * The sender's identity signature over (run id, session, epoch, parameters, sender, commitments,
   * proof): two different packages signed for one run are transferable evidence of equivocation.
   */
  readonly signature: Uint8Array;
}

/** DKG / refresh round 2, sent point to point (encrypted by the channel): f_sender(receiver). */
export interface DkgRound2Msg {
  readonly share: Uint8Array;
}

/** DKG / refresh echo broadcast: every round-1 package this party received, keyed by sender index. */
export interface DkgEchoMsg {
  readonly packages: Record<number, DkgRound1Msg>;
}

/** DKG / refresh confirmation: a digest of the public result this party computed. */
export interface DkgConfirmMsg {
  readonly digest: Uint8Array;
}

/** FROST round 1 (RFC 9591 §5.1): the nonce commitments (what the FROST algebra in core/sign.ts takes). */
export interface SignCommitMsg {
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

/** FROST round 2 (RFC 9591 §5.2): the signature share. */
export interface SignShareMsg {
  readonly share: Uint8Array;
  /**
   * The group commitment R this signer computed for the list (§4.5), encoded as the signature begins
   * with it (SerializeElement(R); bip340: x(R)). A hint for an aggregator that did not sign: it may
   * skip recomputing R (§5.3) and keep the signature only if it verifies (core/frost.ts
   * aggregateWithReportedCommitment). Never evidence against anyone; absent on shares made elsewhere.
   */
  readonly commitment?: Uint8Array;
}

/**
 * What a signer sends in round 1 ('sign/commit'): its nonce commitments, signed with its identity over
 * (run id, session, signer index, hiding, binding) — core/sign.ts signCommitSignedBytes. Two different
 * commitments signed for one run are transferable evidence that the signer equivocated.
 */
export interface SignedCommitMsg extends SignCommitMsg {
  readonly signature: Uint8Array;
}

/**
 * What a signer sends in round 2 ('sign/share'): its signature share, the echo of every signed
 * round-1 commitment it used (keyed by signer index, itself included), and its identity signature
 * over (run id, session, signer index, message, the commitment list, share) — core/sign.ts
 * signShareSignedBytes. The echo is the broadcast check of round 1, folded into round 2.
 */
export interface SignedShareMsg extends SignShareMsg {
  readonly commitments: Record<number, SignedCommitMsg>;
  readonly signature: Uint8Array;
}

/** Threshold decapsulation: D_i = share_i·E with a Chaum–Pedersen proof (c, z) that log_G Y_i = log_E D_i. */
export interface DecapPartialMsg {
  readonly partial: Uint8Array;
  readonly proofChallenge: Uint8Array;
  readonly proofResponse: Uint8Array;
}

/** A share wrapped to a recipient KEM public key with HPKE base mode (core/wrap.ts). */
export interface WrappedShareMsg {
  /** RFC 9180 KEM id: 0x0041 ML-KEM-768 or 0x647a X-Wing. */
  readonly kem: number;
  readonly enc: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/**
 * Threshold ECDSA key setup, rounds 1..5 (core/ecdsa/setup.ts), point to point (encrypted by the
 * channel): this party's setup message for the ordered pairs it forms with the receiver.
 */
export interface EcdsaSetupMsg {
  readonly msg: Uint8Array;
}

/**
 * DKLs23 signing round 1 (core/ecdsa/session.ts), to each other signer: the commitment to R_i (the
 * same to every signer; echoed in round 2) and the first F_RVOLE message with this receiver as Alice.
 */
export interface EcdsaRound1Msg {
  readonly commitment: Uint8Array;
  readonly mul: Uint8Array;
}

/**
 * DKLs23 signing round 2, to each other signer: the echo of every round-1 commitment this signer
 * received (a hash), the decommitment (R_i, salt), the check values Γ^u, Γ^v, ψ and the F_RVOLE reply.
 */
export interface EcdsaRound2Msg {
  readonly echo: Uint8Array;
  readonly R: Uint8Array;
  readonly salt: Uint8Array;
  readonly gammaU: Uint8Array;
  readonly gammaV: Uint8Array;
  readonly psi: Uint8Array;
  readonly mul: Uint8Array;
}

/** DKLs23 signing round 3, broadcast: the shares u_i of r·φ and w_i of (e + r_x·sk)·φ. */
export interface EcdsaRound3Msg {
  readonly u: Uint8Array;
  readonly w: Uint8Array;
}

/**
 * DKLs23 presigning (node/sessions/protocols.ts runEcdsaPresign): rounds 1 and 2 of `count` independent
 * signing instances in one message each, instances[k] for instance k (its own session id).
 */
export interface EcdsaPresign1Msg {
  readonly instances: readonly EcdsaRound1Msg[];
}
export interface EcdsaPresign2Msg {
  readonly instances: readonly EcdsaRound2Msg[];
}

/**
 * Reshare round 1 broadcast ('reshare/deal', core/reshare.ts), from each dealer: Feldman commitments
 * C_{i,0..t'-1} to the polynomial that deals its own share (C_{i,0} is its old verifying share), the
 * digest of the old public key package it reshares (core/commit.ts publicPackageDigest), and its
 * identity signature over (run id, session, old package digest, new threshold and committee, dealer
 * set, sender, commitments): two different packages signed for one run are evidence of equivocation.
 */
export interface ReshareDealMsg {
  readonly commitments: Uint8Array[];
  readonly oldPackageDigest: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Reshare round 1, dealer to new party, point to point (encrypted by the channel): g_dealer(receiver),
 * secret, with the dealer's identity signature over it for this recipient and run
 * (core/reshare.ts reshareShareSignedBytes): a bad one is evidence against its dealer.
 */
export interface ReshareShareMsg {
  readonly share: Uint8Array;
  readonly signature: Uint8Array;
}

/** Reshare echo broadcast: every dealer's round-1 package this player received (its own included), keyed by dealer. */
export interface ReshareEchoMsg {
  readonly packages: Record<number, ReshareDealMsg>;
}

/** Reshare confirmation: core/reshare.ts reshareResultDigest of the new public key package. */
export interface ReshareConfirmMsg {
  readonly digest: Uint8Array;
}

export const MESSAGE_TYPES = [
  'dkg/round1',
  'dkg/round2',
  'dkg/echo',
  'dkg/confirm',
  'sign/commit',
  'sign/share',
  'decap/partial',
  'wrap/share',
  'ecdsa/setup1',
  'ecdsa/setup2',
  'ecdsa/setup3',
  'ecdsa/setup4',
  'ecdsa/setup5',
  'ecdsa/round1',
  'ecdsa/round2',
  'ecdsa/round3',
  'ecdsa/presign1',
  'ecdsa/presign2',
  'reshare/deal',
  'reshare/share',
  'reshare/echo',
  'reshare/confirm',
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface MessageBodies {
  'dkg/round1': DkgRound1Msg;
  'dkg/round2': DkgRound2Msg;
  'dkg/echo': DkgEchoMsg;
  'dkg/confirm': DkgConfirmMsg;
  'sign/commit': SignedCommitMsg;
  'sign/share': SignedShareMsg;
  'decap/partial': DecapPartialMsg;
  'wrap/share': WrappedShareMsg;
  'ecdsa/setup1': EcdsaSetupMsg;
  'ecdsa/setup2': EcdsaSetupMsg;
  'ecdsa/setup3': EcdsaSetupMsg;
  'ecdsa/setup4': EcdsaSetupMsg;
  'ecdsa/setup5': EcdsaSetupMsg;
  'ecdsa/round1': EcdsaRound1Msg;
  'ecdsa/round2': EcdsaRound2Msg;
  'ecdsa/round3': EcdsaRound3Msg;
  'ecdsa/presign1': EcdsaPresign1Msg;
  'ecdsa/presign2': EcdsaPresign2Msg;
  'reshare/deal': ReshareDealMsg;
  'reshare/share': ReshareShareMsg;
  'reshare/echo': ReshareEchoMsg;
  'reshare/confirm': ReshareConfirmMsg;
}
