/**
 * The reshare driver (issue 13): moves a key version to a new committee and threshold over a
 * session's channel. All protocol decisions live in core/reshare.ts; this file only moves messages.
 *
 * Players are the dealers D (old holders, at least the old threshold) and the new committee. Before
 * the core rounds, every dealer hands each non-dealer player the old public package and the key's
 * metadata ('reshare/key'): a node joining the committee holds no record of the key. It accepts them
 * only if every dealer sent the same bytes and the package's digest is the one all operators approved
 * in the session parameters. At most t-1 nodes cheat and |D| >= t, so at least one dealer is honest:
 * equal copies are the true ones. Copies that differ fail the session naming nobody (a third party
 * cannot tell which copy was true from the channel alone).
 */
import { Packr } from 'msgpackr';
import { equalBytes, utf8ToBytes, zeroize } from '../../core/bytes.js';
import { publicPackageDigest } from '../../core/commit.js';
import { ErrorCode, TesseraError, isTesseraError } from '../../core/errors.js';
import { isParty, partyIndices } from '../../core/committee.js';
import { identitySign } from '../../core/identity.js';
import { decodeMessage, encodeMessage } from '../../core/wire.js';
import type { MessageBodies, MessageType } from '../../core/messages.js';
import {
  reshareDiscard,
  reshareFinish,
  reshareRound1,
  reshareRound2,
  reshareRound3,
  reshareShareSignedBytes,
  type ReshareTarget,
} from '../../core/reshare.js';
import { isKeyState } from '../../core/lifecycle.js';
import type { SuiteId } from '../../core/suites.js';
import type { KeyShare, PublicKeyPackage, SecretShare } from '../../core/types.js';
import type { JoiningKeyMeta } from '../store/storage.js';
import { identityAuthenticator, withPairwiseSetup, type DriverContext } from './protocols.js';
import { badShare, targets } from './deviations.js';
import { wipeShareMessages } from '../../core/wipe.js';

/** The round that carries the old package and metadata from the dealers to the other players. */
export const RESHARE_KEY_ROUND = 'reshare/key';
/** Beside it: the first dealer's createdAt of the version (informational; each node's differs). */
export const RESHARE_CREATED_ROUND = 'reshare/created';

export interface ReshareJob {
  readonly suite: SuiteId;
  readonly dealers: readonly number[];
  readonly target: ReshareTarget;
  /** core/commit.ts publicPackageDigest of the old package, from the session parameters. */
  readonly oldPackageDigest: Uint8Array;
  /** What this node holds of the version, if it is an old holder: its key and the record's metadata. */
  readonly held?: { readonly key: KeyShare; readonly meta: JoiningKeyMeta };
}

export interface ReshareOutcome {
  readonly oldPackage: PublicKeyPackage;
  readonly package: PublicKeyPackage;
  /** New committee members: the new key (with its ECDSA pairwise setups). The caller wipes it. */
  readonly key?: KeyShare;
  /** The key's metadata (from the dealers, for a node joining the committee). */
  readonly meta: JoiningKeyMeta;
}

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

/**
 * The part of the handoff every dealer must send alike: the package and the metadata that decides what
 * the key may do. createdAt is each node's own commit time (they differ by milliseconds): it travels
 * beside, and a joining node takes the first dealer's.
 */
function encodeKeyHandoff(pkg: PublicKeyPackage, meta: JoiningKeyMeta): Uint8Array {
  return Uint8Array.from(
    packr.pack({
      p: {
        s: pkg.suite,
        t: pkg.threshold,
        n: pkg.parties,
        e: pkg.epoch,
        c: [...pkg.commitments],
        y: [...pkg.verifyingShares],
        ...(pkg.indices ? { i: [...pkg.indices] } : {}),
      },
      m: {
        x: meta.exportable,
        st: meta.state,
        ...(meta.rotationPeriodMs !== undefined ? { rp: meta.rotationPeriodMs } : {}),
        ...(meta.chainCode !== undefined ? { cc: meta.chainCode } : {}),
      },
    }),
  );
}

/**
 * Strict decode of the handoff. Shapes only: the package's content is fixed by its digest (checked by
 * the caller) and validated in full by core/reshare.ts before any use.
 */
function decodeKeyHandoff(bytes: Uint8Array, createdAt: number): { pkg: PublicKeyPackage; meta: JoiningKeyMeta } {
  const bad = () => new TesseraError(ErrorCode.BadMessage, 'reshare: the key handoff does not decode');
  let o: unknown;
  try {
    o = packr.unpack(bytes);
  } catch {
    throw bad();
  }
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
  const isInt = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
  const bytesList = (v: unknown) => Array.isArray(v) && v.length >= 1 && v.length <= 255 && v.every((b) => b instanceof Uint8Array && b.length <= 133);
  if (!isMap(o) || Object.keys(o).sort().join(',') !== 'm,p' || !isMap(o.p) || !isMap(o.m)) throw bad();
  const p = o.p;
  const m = o.m;
  if (typeof p.s !== 'string' || !isInt(p.t, 2, 255) || !isInt(p.n, 2, 255) || !isInt(p.e, 0, 0xffffffff) || !bytesList(p.c) || !bytesList(p.y)) throw bad();
  if (p.i !== undefined && !(Array.isArray(p.i) && p.i.every((i) => isInt(i, 1, 255)))) throw bad();
  if (typeof m.x !== 'boolean' || !isKeyState(m.st) || m.st === 'destroyed') throw bad();
  if (m.rp !== undefined && !isInt(m.rp, 1, Number.MAX_SAFE_INTEGER)) throw bad();
  if (m.cc !== undefined && !(m.cc instanceof Uint8Array && m.cc.length === 32)) throw bad();
  const pkg: PublicKeyPackage = {
    suite: p.s as SuiteId,
    threshold: p.t as number,
    parties: p.n as number,
    epoch: p.e as number,
    commitments: (p.c as Uint8Array[]).map((c) => Uint8Array.from(c)),
    verifyingShares: (p.y as Uint8Array[]).map((c) => Uint8Array.from(c)),
    ...(p.i !== undefined ? { indices: [...(p.i as number[])] } : {}),
  };
  const meta: JoiningKeyMeta = {
    exportable: m.x,
    state: m.st as JoiningKeyMeta['state'],
    createdAt,
    ...(m.rp !== undefined ? { rotationPeriodMs: m.rp as number } : {}),
    ...(m.cc !== undefined ? { chainCode: Uint8Array.from(m.cc as Uint8Array) } : {}),
  };
  return { pkg, meta };
}

async function receiveFrom<T extends MessageType>(ctx: DriverContext, type: T, suite: SuiteId, from: readonly number[]): Promise<Map<number, MessageBodies[T]>> {
  const raw = await ctx.channel.receiveAll(type, from);
  const out = new Map<number, MessageBodies[T]>();
  try {
    for (const [sender, bytes] of raw) {
      try {
        out.set(sender, decodeMessage(bytes, type, suite, {}));
      } catch (e) {
        const code = isTesseraError(e) ? e.code : ErrorCode.BadMessage;
        throw new TesseraError(code, `a malformed ${type} arrived from node ${sender}: ${(e as Error).message}`);
      }
    }
    return out;
  } finally {
    // A sub-share is secret in transit: the decrypted plaintext is wiped here, decoded or not.
    if (type === 'reshare/share') for (const bytes of raw.values()) zeroize(bytes);
  }
}

/**
 * Run the reshare rounds, then (ECDSA suites) the new committee's pairwise setups. Returns the new
 * package, and for a member of the new committee its new key. Secret round state is wiped however
 * the session ends.
 */
export async function runReshare(ctx: DriverContext, job: ReshareJob): Promise<ReshareOutcome> {
  const { suite, dealers, target } = job;
  const self = ctx.self;
  const isDealer = dealers.includes(self);
  const others = ctx.players.filter((p) => p !== self);
  const nonDealers = others.filter((p) => !dealers.includes(p));

  // 1. The old package and metadata: dealers hand them on; everyone else takes them only if every dealer agrees.
  let oldPackage: PublicKeyPackage;
  let meta: JoiningKeyMeta;
  if (isDealer) {
    if (!job.held) throw new TesseraError(ErrorCode.BadState, `node ${self} is a dealer but holds no share of the key`);
    oldPackage = job.held.key.publicKey;
    meta = job.held.meta;
    const handoff = encodeKeyHandoff(oldPackage, meta);
    for (const to of nonDealers) {
      ctx.channel.send(to, RESHARE_KEY_ROUND, handoff);
      ctx.channel.send(to, RESHARE_CREATED_ROUND, utf8ToBytes(String(meta.createdAt)));
    }
  } else {
    const [copies, created] = await Promise.all([ctx.channel.receiveAll(RESHARE_KEY_ROUND, dealers), ctx.channel.receiveAll(RESHARE_CREATED_ROUND, dealers)]);
    const first = copies.get(dealers[0]!)!;
    const differing = dealers.filter((d) => !equalBytes(copies.get(d)!, first));
    if (differing.length > 0) {
      throw new TesseraError(ErrorCode.ConfirmationMismatch, `reshare: the dealers sent different copies of the key (nodes ${dealers[0]} and ${differing.join(',')} differ)`);
    }
    const createdText = new TextDecoder().decode(created.get(dealers[0]!)!);
    const createdAt = Number(createdText);
    if (!/^[0-9]{1,16}$/.test(createdText) || !Number.isSafeInteger(createdAt)) throw new TesseraError(ErrorCode.BadMessage, 'reshare: the key handoff does not decode');
    const got = decodeKeyHandoff(first, createdAt);
    oldPackage = job.held?.key.publicKey ?? got.pkg;
    meta = job.held?.meta ?? got.meta;
    if (!equalBytes(publicPackageDigest(got.pkg), job.oldPackageDigest)) {
      throw new TesseraError(ErrorCode.EpochMismatch, 'reshare: the dealers hold another state of the key than the one the session was approved for');
    }
  }
  if (!equalBytes(publicPackageDigest(oldPackage), job.oldPackageDigest)) {
    throw new TesseraError(ErrorCode.EpochMismatch, `reshare: node ${self} holds epoch ${oldPackage.epoch} of the key, not the state the session was approved for; run tessera repair`);
  }

  // 2. The core rounds (core/reshare.ts).
  const auth = identityAuthenticator(ctx);
  let state: unknown;
  let dealt: Map<number, MessageBodies['reshare/share']> | undefined;
  let receivedShares: Map<number, MessageBodies['reshare/share']> | undefined;
  let result: { package: PublicKeyPackage; share?: SecretShare };
  try {
    const r1 = reshareRound1(
      {
        suite,
        sessionId: ctx.session,
        runId: ctx.runId,
        self,
        oldPackage,
        dealers,
        target,
        ...(isDealer ? { share: job.held!.key.secret } : {}),
      },
      auth,
    );
    state = r1.state;
    dealt = r1.shares;
    if (r1.deal) {
      const bytes = encodeMessage('reshare/deal', suite, r1.deal);
      for (const to of others) ctx.channel.send(to, 'reshare/deal', bytes);
    }
    for (const [to, msg] of r1.shares ?? []) {
      // The harness's bad-share-to (node/sessions/deviations.ts): a sub-share off this dealer's
      // commitments, which it signs as an honest dealer signs its sub-shares (so it is caught with evidence).
      let sent = msg;
      if (targets(ctx.deviations?.badShareTo, to)) {
        const { share } = badShare(suite, { share: msg.share });
        const binding = { suite, sessionId: ctx.session, runId: ctx.runId, oldPackageDigest: job.oldPackageDigest, oldIndices: partyIndices(oldPackage), threshold: target.threshold, indices: target.indices, dealers };
        sent = { share, signature: identitySign(ctx.identity.secretKey, reshareShareSignedBytes(binding, self, to, share)) };
      }
      const bytes = encodeMessage('reshare/share', suite, sent);
      try {
        ctx.channel.send(to, 'reshare/share', bytes);
      } finally {
        zeroize(bytes);
      }
    }
    ctx.crashPoint?.('reshare-after-deal');
    const otherDealers = dealers.filter((d) => d !== self);
    const deals = await receiveFrom(ctx, 'reshare/deal', suite, otherDealers);
    const r2 = reshareRound2(r1.state, deals);
    state = r2.state;
    ctx.channel.broadcast('reshare/echo', encodeMessage('reshare/echo', suite, r2.echo));
    const sharesArriving = isParty({ parties: target.indices.length, indices: target.indices }, self) ? receiveFrom(ctx, 'reshare/share', suite, otherDealers) : Promise.resolve(new Map());
    const [echoes, shares] = await Promise.all([receiveFrom(ctx, 'reshare/echo', suite, others), sharesArriving]).catch((e: unknown) => {
      sharesArriving.then(wipeShareMessages, () => undefined);
      throw e;
    });
    receivedShares = shares;
    const r3 = reshareRound3(r2.state, echoes, shares);
    state = r3.state;
    ctx.channel.broadcast('reshare/confirm', encodeMessage('reshare/confirm', suite, r3.confirm));
    ctx.crashPoint?.('reshare-after-confirm');
    const confirms = await receiveFrom(ctx, 'reshare/confirm', suite, others);
    result = reshareFinish(r3.state, confirms);
    state = undefined;
  } finally {
    if (state !== undefined) reshareDiscard(state);
    wipeShareMessages(dealt);
    wipeShareMessages(receivedShares);
  }

  // 3. ECDSA: the new committee makes its pairwise setups (the old ones are never reused).
  if (!result.share) return { oldPackage, package: result.package, meta };
  const key: KeyShare = { publicKey: result.package, secret: result.share };
  try {
    const withSetups = await withPairwiseSetup({ ...ctx, players: [...target.indices] }, key);
    return { oldPackage, package: result.package, key: withSetups, meta };
  } catch (e) {
    zeroize(result.share.value);
    throw e;
  }
}
