/**
 * FROST threshold signing (RFC 9591 §5) with any t of the n parties, as thin plain functions over the
 * suite's noble FROST ciphersuite (`suite.frost`).
 *
 * Round 1 (§5.1): every signer commits to a fresh pair of nonces and sends the commitments.
 * Round 2 (§5.2): every signer, given the commitment list and the message, sends its signature share.
 * Aggregation (§5.3): the shares are checked one by one (§5.4, so that every bad signer is named),
 * summed, and the final signature is verified under the group public key before it is returned.
 *
 * What this module adds to noble: typed errors, validation of every input before any arithmetic,
 * culprit attribution, one-use secret nonce state, and the epoch / suite binding of shares.
 *
 * Party i's RFC 9591 identifier is the scalar i (`frost.Identifier.fromNumber(i)`).
 *
 * bip340: the key package stores the untweaked group key with whatever y parity it has; noble's
 * FROST-secp256k1-SHA256-TR-v1 negates the share, the verifying shares and the nonces at signing time
 * when the group key or the group commitment has odd y (the BIP-340 "even y" convention), so the
 * result is a plain BIP-340 signature under the x-only group key. No TapTweak is applied.
 */
import { concatBytes, equalBytes, utf8ToBytes, zeroize } from './bytes.js';
import { ErrorCode, TesseraError, ensure, guard } from './errors.js';
import type { Point } from './group.js';
import type { SignCommitMsg, SignShareMsg } from './messages.js';
import { checkThreshold } from './shamir.js';
import type { SigningSuite, SigningSuiteId, Suite } from './suites.js';
import type { KeyShare, PublicKeyPackage, SecretShare } from './types.js';

// ---------------------------------------------------------------------------------------------
// Secret round state

/**
 * A signer's round-1 secret: the hiding and binding nonces of RFC 9591 §5.1. Never sent, used once.
 * `signRound2` wipes the nonce bytes and sets `consumed` whether it succeeds or not, so a nonce pair
 * can never sign twice (two shares under one nonce pair with different binding factors reveal the
 * share). A failed signing attempt restarts from round 1.
 */
export interface SigningNonces {
  readonly suite: SigningSuiteId;
  /** The party that made the nonces. */
  readonly index: number;
  /** The epoch of the share the nonces were made for. */
  readonly epoch: number;
  /** SerializeScalar(hiding_nonce). Secret. */
  readonly hiding: Uint8Array;
  /** SerializeScalar(binding_nonce). Secret. */
  readonly binding: Uint8Array;
  /** A private copy of the commitments this party sent (round 2 checks the list carries exactly these). */
  readonly commit: SignCommitMsg;
  /** Set once the nonces have been used (or discarded); any further use throws BadState. */
  consumed: boolean;
}

/** Wipe round-1 nonces that will not be used (an aborted session). Safe to call more than once. */
export function discardNonces(nonces: SigningNonces): void {
  zeroize(nonces.hiding, nonces.binding);
  nonces.consumed = true;
}

// ---------------------------------------------------------------------------------------------
// Validation (before any crypto) and conversion to noble's FrostPublic / FrostSecret

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

function checkSigningSuite(suite: SigningSuite): void {
  ensure(isObject(suite) && suite.kind === 'sign', ErrorCode.UnknownSuite, 'not a signing suite');
}

/** The public package, decoded and checked: counts, epoch, every element valid and not the identity. */
interface CheckedPackage {
  readonly pkg: PublicKeyPackage;
  readonly groupKey: Point;
}

function checkPackage(suite: Suite, pkg: PublicKeyPackage): CheckedPackage {
  ensure(isObject(pkg), ErrorCode.BadInput, 'public key package: expected an object');
  ensure(pkg.suite === suite.id, ErrorCode.UnknownSuite, `public key package is for suite ${String(pkg.suite)}, not ${suite.id}`);
  checkThreshold(pkg.threshold, pkg.parties);
  ensure(Number.isSafeInteger(pkg.epoch) && pkg.epoch >= 0, ErrorCode.BadInput, 'public key package: bad epoch');
  ensure(
    Array.isArray(pkg.commitments) && pkg.commitments.length === pkg.threshold,
    ErrorCode.BadInput,
    `public key package: expected ${pkg.threshold} commitments`,
  );
  ensure(
    Array.isArray(pkg.verifyingShares) && pkg.verifyingShares.length === pkg.parties,
    ErrorCode.BadInput,
    `public key package: expected ${pkg.parties} verifying shares`,
  );
  // RFC 9591 §3.1 DeserializeElement for every public element we will hand to noble.
  const decoded = pkg.commitments.map((c, k) => suite.group.pointFromBytes(c, `commitment[${k}]`));
  pkg.verifyingShares.forEach((y, k) => suite.group.pointFromBytes(y, `verifying share of party ${k + 1}`));
  return { pkg, groupKey: decoded[0]! };
}

function checkSecretShare(suite: SigningSuite, share: SecretShare): bigint {
  ensure(isObject(share), ErrorCode.BadInput, 'secret share: expected an object');
  ensure(share.suite === suite.id, ErrorCode.UnknownSuite, `secret share is for suite ${String(share.suite)}, not ${suite.id}`);
  ensure(Number.isSafeInteger(share.index) && share.index >= 1 && share.index <= 255, ErrorCode.BadInput, 'secret share: bad party index');
  ensure(Number.isSafeInteger(share.epoch) && share.epoch >= 0, ErrorCode.BadInput, 'secret share: bad epoch');
  // RFC 9591 §3.1 DeserializeScalar: canonical, and a zero share is never a valid key share.
  return suite.group.scalarFromBytes(share.value, 'secret share');
}

/** The signer set with its commitments, decoded and sorted by identifier (RFC 9591 §4.3 order). */
interface CheckedCommits {
  readonly signers: number[];
  readonly list: { index: number; hiding: Uint8Array; binding: Uint8Array }[];
}

function checkCommits(suite: SigningSuite, pkg: PublicKeyPackage, commits: Map<number, SignCommitMsg>): CheckedCommits {
  ensure(commits instanceof Map, ErrorCode.BadInput, 'commitments: expected a Map keyed by party index');
  const signers = [...commits.keys()];
  for (const i of signers) {
    ensure(
      Number.isSafeInteger(i) && i >= 1 && i <= pkg.parties,
      ErrorCode.UnexpectedParty,
      `commitment from party ${String(i).slice(0, 12)}, which is not in 1..${pkg.parties}`,
    );
  }
  signers.sort((a, b) => a - b);
  // RFC 9591 §5.2/§5.3: MIN_PARTICIPANTS <= NUM_PARTICIPANTS <= MAX_PARTICIPANTS (a Map has no duplicate keys).
  ensure(
    signers.length >= pkg.threshold && signers.length <= pkg.parties,
    ErrorCode.BadParameters,
    `need ${pkg.threshold}..${pkg.parties} signers, got ${signers.length}`,
  );
  const bad: number[] = [];
  const list: CheckedCommits['list'] = [];
  for (const i of signers) {
    const c = commits.get(i);
    try {
      ensure(isObject(c), ErrorCode.BadMessage, 'commitment: expected an object');
      // RFC 9591 §3.1 DeserializeElement: valid, canonical, not the identity, in the prime-order subgroup.
      suite.group.pointFromBytes(c.hiding, `hiding commitment of party ${i}`);
      suite.group.pointFromBytes(c.binding, `binding commitment of party ${i}`);
      list.push({ index: i, hiding: c.hiding, binding: c.binding });
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      bad.push(i);
    }
  }
  if (bad.length > 0) {
    throw new TesseraError(ErrorCode.BadPoint, `nonce commitments from parties ${bad.join(', ')} are not valid elements`, bad);
  }
  return { signers, list };
}

function checkMessage(message: Uint8Array): void {
  ensure(message instanceof Uint8Array, ErrorCode.BadInput, 'message: expected bytes');
}

const identifier = (suite: SigningSuite, i: number): string => suite.frost.Identifier.fromNumber(i);

// noble's parameter types (its TArg<> wrappers demand ArrayBuffer-backed arrays; ours are plain Uint8Array).
type NobleFrost = SigningSuite['frost'];
type FrostPublic = Parameters<NobleFrost['signShare']>[1];
type FrostSecret = Parameters<NobleFrost['signShare']>[0];
type NonceCommitments = Parameters<NobleFrost['signShare']>[3][number];
type FrostNonces = Parameters<NobleFrost['signShare']>[2];
type FrostRng = NonNullable<Parameters<NobleFrost['commit']>[1]>;

/** The one place that turns our package into noble's FrostPublic. */
function toFrostPublic(suite: SigningSuite, pkg: PublicKeyPackage): FrostPublic {
  const verifyingShares: Record<string, Uint8Array> = {};
  pkg.verifyingShares.forEach((y, k) => (verifyingShares[identifier(suite, k + 1)] = y));
  return { signers: { min: pkg.threshold, max: pkg.parties }, commitments: [...pkg.commitments], verifyingShares } as FrostPublic;
}

/** The one place that turns our share into noble's FrostSecret. */
function toFrostSecret(suite: SigningSuite, share: SecretShare): FrostSecret {
  return { identifier: identifier(suite, share.index), signingShare: share.value } as FrostSecret;
}

function toCommitmentList(suite: SigningSuite, commits: CheckedCommits): NonceCommitments[] {
  return commits.list.map((c) => ({ identifier: identifier(suite, c.index), hiding: c.hiding, binding: c.binding }) as NonceCommitments);
}

// ---------------------------------------------------------------------------------------------
// Round 1 (RFC 9591 §5.1 commit)

/**
 * Make this party's nonces and their commitments. `rng` replaces the CSPRNG (tests feed the RFC 9591
 * vectors' randomness): noble calls rng(32) for the hiding nonce, then rng(32) for the binding nonce,
 * and derives each nonce as H3(random_bytes || SerializeScalar(secret)) (§4.1 nonce_generate).
 */
export function signRound1(
  suite: SigningSuite,
  share: SecretShare,
  rng?: (n: number) => Uint8Array,
): { nonces: SigningNonces; commit: SignCommitMsg } {
  checkSigningSuite(suite);
  checkSecretShare(suite, share);
  ensure(rng === undefined || typeof rng === 'function', ErrorCode.BadInput, 'rng: expected a function');
  const checkedRng =
    rng === undefined
      ? undefined
      : (n: number): Uint8Array => {
          const r = rng(n);
          ensure(r instanceof Uint8Array && r.length === n, ErrorCode.BadInput, `rng: expected ${n} bytes`);
          return r;
        };
  const made = guard(ErrorCode.BadInput, 'nonce generation failed', () =>
    suite.frost.commit(toFrostSecret(suite, share), checkedRng as FrostRng | undefined),
  );
  const nonces: SigningNonces = {
    suite: suite.id as SigningSuiteId,
    index: share.index,
    epoch: share.epoch,
    hiding: made.nonces.hiding,
    binding: made.nonces.binding,
    commit: { hiding: Uint8Array.from(made.commitments.hiding), binding: Uint8Array.from(made.commitments.binding) },
    consumed: false,
  };
  return { nonces, commit: { hiding: Uint8Array.from(made.commitments.hiding), binding: Uint8Array.from(made.commitments.binding) } };
}

// ---------------------------------------------------------------------------------------------
// Round 2 (RFC 9591 §5.2 sign)

/**
 * Compute this party's signature share over `message` for the signer set in `commits` (keyed by
 * sender index, this party included). Consumes `nonces` in every case.
 */
export function signRound2(
  suite: SigningSuite,
  key: KeyShare,
  nonces: SigningNonces,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): SignShareMsg {
  ensure(isObject(nonces), ErrorCode.BadInput, 'nonces: expected round-1 state');
  ensure(nonces.consumed === false, ErrorCode.BadState, 'signing nonces were already used');
  try {
    checkSigningSuite(suite);
    ensure(isObject(key), ErrorCode.BadInput, 'key: expected a key share');
    const { pkg } = checkPackage(suite, key.publicKey);
    const share = key.secret;
    const s = checkSecretShare(suite, share);
    // Shares and packages of different epochs must never combine.
    ensure(share.epoch === pkg.epoch, ErrorCode.EpochMismatch, `secret share is at epoch ${share.epoch}, package at ${pkg.epoch}`);
    ensure(share.index <= pkg.parties, ErrorCode.BadInput, `secret share index ${share.index} is not in 1..${pkg.parties}`);
    ensure(nonces.suite === suite.id, ErrorCode.UnknownSuite, `nonces are for suite ${String(nonces.suite)}, not ${suite.id}`);
    ensure(nonces.index === share.index, ErrorCode.BadInput, `nonces belong to party ${nonces.index}, not ${share.index}`);
    ensure(nonces.epoch === share.epoch, ErrorCode.EpochMismatch, `nonces were made at epoch ${nonces.epoch}, share is at ${share.epoch}`);
    const checked = checkCommits(suite, pkg, commits);
    checkMessage(message);
    // The list must carry exactly the commitments this party made (RFC 9591 §5.2: the signer checks
    // its own entry); a substituted entry would make us sign with nonces nobody committed to.
    const own = commits.get(share.index);
    ensure(own !== undefined, ErrorCode.BadInput, `the signer set does not include this party (${share.index})`);
    ensure(
      equalBytes(own.hiding, nonces.commit.hiding) && equalBytes(own.binding, nonces.commit.binding),
      ErrorCode.BadInput,
      'the commitment list entry for this party does not match its nonces',
    );
    // Our share must be the one the package vouches for, or every share we send would be "bad".
    ensure(
      suite.group.eqPoints(suite.group.mulBase(s), suite.group.pointFromBytes(pkg.verifyingShares[share.index - 1]!, 'verifying share')),
      ErrorCode.BadShare,
      `secret share of party ${share.index} does not match its verifying share`,
    );
    // noble zeroes the nonce arrays it is given; hand it copies and wipe ours in `finally`.
    const sigShare = guard(ErrorCode.BadInput, 'signature share computation failed', () =>
      suite.frost.signShare(
        toFrostSecret(suite, share),
        toFrostPublic(suite, pkg),
        { hiding: Uint8Array.from(nonces.hiding), binding: Uint8Array.from(nonces.binding) } as FrostNonces,
        toCommitmentList(suite, checked),
        message,
      ),
    );
    return { share: sigShare };
  } finally {
    discardNonces(nonces);
  }
}

// ---------------------------------------------------------------------------------------------
// Share verification (RFC 9591 §5.4) and aggregation (§5.3)

interface SigningContext {
  readonly suite: SigningSuite;
  readonly checkedPkg: CheckedPackage;
  readonly commits: CheckedCommits;
  readonly pub: FrostPublic;
  readonly list: NonceCommitments[];
  readonly message: Uint8Array;
}

function context(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): SigningContext {
  checkSigningSuite(suite);
  const checkedPkg = checkPackage(suite, pkg);
  const checkedCommits = checkCommits(suite, pkg, commits);
  checkMessage(message);
  return {
    suite,
    checkedPkg,
    commits: checkedCommits,
    pub: toFrostPublic(suite, pkg),
    list: toCommitmentList(suite, checkedCommits),
    message,
  };
}

/** Check every signer's share; returns the shares keyed by noble identifier. Throws naming ALL bad signers. */
function verifyShares(ctx: SigningContext, shares: Map<number, SignShareMsg>): Record<string, Uint8Array> {
  const { suite, commits } = ctx;
  ensure(shares instanceof Map, ErrorCode.BadInput, 'signature shares: expected a Map keyed by party index');
  const expected = new Set(commits.signers);
  const extra = [...shares.keys()].filter((i) => !expected.has(i));
  if (extra.length > 0) {
    // A share from a party outside the signer set: the authenticated sender sent something it should not.
    const named = extra.filter((i) => Number.isSafeInteger(i) && i >= 1 && i <= ctx.checkedPkg.pkg.parties);
    throw new TesseraError(ErrorCode.UnexpectedParty, `signature shares from parties outside the signer set`, named);
  }
  const missing = commits.signers.filter((i) => !shares.has(i));
  // Absence proves nothing about the party (the message may have been dropped): no culprits.
  ensure(missing.length === 0, ErrorCode.UnexpectedParty, `missing signature shares from parties ${missing.join(', ')}`);

  const bad: number[] = [];
  const byId: Record<string, Uint8Array> = {};
  for (const i of commits.signers) {
    const msg = shares.get(i);
    const ok = (() => {
      if (!isObject(msg)) return false;
      try {
        // RFC 9591 §3.1 DeserializeScalar: exact length, canonical. (Zero is a legal, if unlikely, share.)
        suite.group.scalarFromBytes(msg.share, `signature share of party ${i}`, true);
      } catch {
        return false;
      }
      try {
        // RFC 9591 §5.4 verify_signature_share: z_i·G == R_i + (c·λ_i)·PK_i, with R_i = D_i + ρ_i·E_i.
        return suite.frost.verifyShare(ctx.pub, ctx.list, ctx.message, identifier(suite, i), msg.share);
      } catch {
        return false;
      }
    })();
    if (ok) byId[identifier(suite, i)] = msg!.share;
    else bad.push(i);
  }
  if (bad.length > 0) {
    throw new TesseraError(ErrorCode.BadSignatureShare, `signature shares from parties ${bad.join(', ')} do not verify`, bad);
  }
  return byId;
}

/** Verify every signer's share (RFC 9591 §5.4). Throws BadSignatureShare naming ALL bad signers. */
export function verifySignatureShares(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
  shares: Map<number, SignShareMsg>,
): void {
  verifyShares(context(suite, pkg, commits, message), shares);
}

/**
 * Verify the shares (naming culprits), aggregate them (RFC 9591 §5.3: R = Σ(D_i + ρ_i·E_i),
 * z = Σ z_i), then verify the final signature under the group public key before returning it.
 */
export function aggregateSignature(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
  shares: Map<number, SignShareMsg>,
): Uint8Array {
  const ctx = context(suite, pkg, commits, message);
  const byId = verifyShares(ctx, shares);
  const signature = guard(ErrorCode.VerificationFailed, 'signature aggregation failed', () =>
    suite.frost.aggregate(ctx.pub, ctx.list, message as Uint8Array<ArrayBuffer>, byId as Record<string, Uint8Array<ArrayBuffer>>),
  );
  ensure(
    signature.length === suite.signatureLength && suite.verify(signature, message, groupPublicKey(suite, pkg)),
    ErrorCode.VerificationFailed,
    'aggregated signature does not verify under the group public key',
  );
  return signature;
}

/**
 * The suite's standard public-key encoding of the group key commitments[0]: 32 bytes for ed25519,
 * 32-byte x-only for bip340, 33-byte compressed SEC1 for secp256k1 and p256 (and the KEM suites'
 * RFC 9180 SerializePublicKey).
 */
export function groupPublicKey(suite: Suite, pkg: PublicKeyPackage): Uint8Array {
  ensure(isObject(suite) && isObject(pkg), ErrorCode.BadInput, 'group public key: expected a suite and a package');
  ensure(pkg.suite === suite.id, ErrorCode.UnknownSuite, `public key package is for suite ${String(pkg.suite)}, not ${suite.id}`);
  ensure(Array.isArray(pkg.commitments) && pkg.commitments.length > 0, ErrorCode.BadInput, 'public key package: no commitments');
  return suite.publicKeyBytes(suite.group.pointFromBytes(pkg.commitments[0]!, 'group public key'));
}

// ---------------------------------------------------------------------------------------------
// Binding factors (RFC 9591 §4.3, §4.4), computed independently of noble

/**
 * RFC 9591 §4.4 rho_input for every signer, keyed by party index:
 *   rho_input_prefix = SerializeElement(group_public_key) || H4(msg) || H5(encode_group_commitment_list(list))
 *   rho_input        = rho_input_prefix || SerializeScalar(identifier)
 * with H4(m) = H(contextString || "msg" || m) and H5(m) = H(contextString || "com" || m) (§6).
 * For bip340 the group key is the even-y one the signature verifies under (what noble's TR suite hashes).
 */
export function bindingFactorInputs(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): Map<number, Uint8Array> {
  const ctx = context(suite, pkg, commits, message);
  const { group } = suite;
  const contextString = utf8ToBytes(suite.frostName);
  const H = (tag: string, m: Uint8Array) => suite.frostHash(concatBytes(contextString, utf8ToBytes(tag), m));
  // §4.3 encode_group_commitment_list: identifier || hiding || binding, sorted by identifier.
  const encodedList = concatBytes(
    ...ctx.commits.list.flatMap((c) => [group.scalarToBytes(BigInt(c.index)), c.hiding, c.binding]),
  );
  // publicKeyBytes then publicKeyFromBytes is the identity except for bip340, where it lifts x to even y.
  const verifyingKey = suite.publicKeyFromBytes(suite.publicKeyBytes(ctx.checkedPkg.groupKey));
  const prefix = concatBytes(group.pointToBytes(verifyingKey), H('msg', message), H('com', encodedList));
  const out = new Map<number, Uint8Array>();
  for (const c of ctx.commits.list) out.set(c.index, concatBytes(prefix, group.scalarToBytes(BigInt(c.index))));
  return out;
}

/** RFC 9591 §4.4 compute_binding_factors: binding_factor_i = H1(rho_input_i), H1 = hash-to-scalar with DST contextString || "rho". */
export function bindingFactors(
  suite: SigningSuite,
  pkg: PublicKeyPackage,
  commits: Map<number, SignCommitMsg>,
  message: Uint8Array,
): Map<number, bigint> {
  const dst = concatBytes(utf8ToBytes(suite.frostName), utf8ToBytes('rho'));
  const out = new Map<number, bigint>();
  for (const [i, rhoInput] of bindingFactorInputs(suite, pkg, commits, message)) out.set(i, suite.group.hashToScalar(dst, rhoInput));
  return out;
}
