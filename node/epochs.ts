/**
 * Crash-safe epochs for refresh.
 *
 * A refresh stages the new epoch at every node, exchanges "staged" acknowledgements, and only then
 * commits. So if any node has committed epoch E, every node has staged E (pending or committed):
 * a node that crashed before committing still holds E as pending. At the start of every session the
 * players exchange, authenticated, the epochs they hold; they use the highest committed epoch among
 * them, and a player that holds it only as pending promotes it. If nobody committed, the old epoch is
 * still everywhere. Either way the cluster never ends up with shares of mixed epochs that cannot sign.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { Packr } from 'msgpackr';
import { concatBytes, equalBytes, framed, i2osp, utf8ToBytes } from '../core/bytes.js';
import { ErrorCode, TesseraError } from '../core/errors.js';
import type { PublicKeyPackage } from '../core/types.js';

export interface EpochRef {
  epoch: number;
  /** Digest of the public package at that epoch: two different packages with one epoch never mix. */
  digest: Uint8Array;
}

export interface HeldEpochs {
  committed: EpochRef;
  pending?: EpochRef;
}

const packr = new Packr({ useRecords: false, moreTypes: false });

export function packageDigest(pkg: PublicKeyPackage): Uint8Array {
  return sha256(
    framed(
      utf8ToBytes('tessera/public-package/v1'),
      utf8ToBytes(pkg.suite),
      i2osp(pkg.threshold, 1),
      i2osp(pkg.parties, 1),
      i2osp(pkg.epoch, 4),
      concatBytes(...pkg.commitments.map((c) => framed(c))),
      concatBytes(...pkg.verifyingShares.map((c) => framed(c))),
    ),
  );
}

export function encodeHeld(h: HeldEpochs | undefined): Uint8Array {
  if (!h) return new Uint8Array();
  return packr.pack({ c: h.committed.epoch, cd: h.committed.digest, ...(h.pending ? { p: h.pending.epoch, pd: h.pending.digest } : {}) });
}

export function decodeHeld(bytes: Uint8Array, from: number): HeldEpochs {
  const bad = () => new TesseraError(ErrorCode.BadMessage, `node ${from} sent malformed epoch information`, [from]);
  let o: any;
  try {
    o = packr.unpack(bytes);
  } catch {
    throw bad();
  }
  const ref = (e: unknown, d: unknown): EpochRef => {
    if (!Number.isSafeInteger(e) || (e as number) < 0 || !(d instanceof Uint8Array) || d.length !== 32) throw bad();
    return { epoch: e as number, digest: new Uint8Array(d) };
  };
  if (typeof o !== 'object' || o === null) throw bad();
  return { committed: ref(o.c, o.cd), ...(o.p !== undefined ? { pending: ref(o.p, o.pd) } : {}) };
}

export interface EpochChoice {
  epoch: number;
  /** This node must promote its pending epoch to committed before using it. */
  promote: boolean;
}

/** Decide which epoch the session uses, from this node's and the peers' authenticated holdings. */
export function chooseEpoch(self: HeldEpochs, peers: ReadonlyMap<number, HeldEpochs>, selfIndex: number): EpochChoice {
  const all = new Map<number, HeldEpochs>([...peers, [selfIndex, self]]);
  let best: EpochRef = self.committed;
  for (const h of all.values()) if (h.committed.epoch > best.epoch) best = h.committed;
  for (const [node, h] of all) {
    if (h.committed.epoch === best.epoch && !equalBytes(h.committed.digest, best.digest)) {
      throw new TesseraError(ErrorCode.EpochMismatch, `node ${node} committed a different package at epoch ${best.epoch}`, [node]);
    }
    const has =
      (h.committed.epoch === best.epoch && equalBytes(h.committed.digest, best.digest)) ||
      (h.pending !== undefined && h.pending.epoch === best.epoch && equalBytes(h.pending.digest, best.digest));
    if (!has) throw new TesseraError(ErrorCode.EpochMismatch, `node ${node} does not hold epoch ${best.epoch}`);
  }
  return { epoch: best.epoch, promote: self.committed.epoch !== best.epoch };
}
