/**
 * Cross-size failover, node side (issue 13 item 4): a key moves to a cluster of another size (t', n')
 * through a version 2 bundle (core/bundle.ts).
 *
 * - Export, on every source node: after the export session's refresh (never committed, so no exported
 *   value equals a retained share), the node deals its fresh share to destination nodes 1..n' with
 *   core/reshare.ts dealReshare (verifiable secret redistribution: Desmedt–Jajodia 1997, Wong–Wang–Wing
 *   2002, RFC 9591 Appendix C.2 commitments) and seals each sub-share g_i(j) to destination node j's
 *   import key (core/bundle.ts wrapSubShare). The SDK assembles the bundle from every node's answer.
 * - Import, on destination node j: open every dealer's sub-share for j with this node's import key,
 *   then core/reshare.ts combineSubShares checks each against its dealer's commitments (naming a bad
 *   dealer) and the result against the bundle's new package. The import session then re-randomises
 *   and commits as for a same-size bundle.
 *
 * The dealers are nodes of the SOURCE cluster: an error here names them in its message, never as
 * culprits (culprits are nodes of this cluster's session).
 */
import { toHex, zeroize } from '../../core/bytes.js';
import { wrapSubShare, unwrapSubShare, type BundleBinding, type DealtSubSharesJson, type KeyBundle, type WrappedShareJson } from '../../core/bundle.js';
import { contiguousIndices } from '../../core/committee.js';
import { ErrorCode, TesseraError, ensure } from '../../core/errors.js';
import { combineSubShares, dealReshare } from '../../core/reshare.js';
import { checkThreshold } from '../../core/shamir.js';
import type { KeyShare, SecretShare } from '../../core/types.js';
import type { WrappingKeyPair } from '../../core/wrap.js';

/** The destination's size: t' of nodes 1..n'. */
export interface FailoverTarget {
  readonly threshold: number;
  readonly parties: number;
}

/**
 * Deal `key` (this node's re-randomised share and its package) to destination nodes 1..n' and seal
 * sub-share j to `recipientKeys[j - 1]`. Returns the public commitments and the sealed sub-shares; the
 * plaintext sub-shares are wiped before returning, whatever happens.
 */
export async function dealExportSubShares(
  key: KeyShare,
  binding: BundleBinding,
  target: FailoverTarget,
  recipientKeys: readonly Uint8Array[],
): Promise<DealtSubSharesJson> {
  checkThreshold(target.threshold, target.parties);
  ensure(recipientKeys.length === target.parties, ErrorCode.BadInput, `export: ${target.parties} destination keys needed, got ${recipientKeys.length}`);
  const dealt = dealReshare(key.publicKey, key.secret, { threshold: target.threshold, indices: contiguousIndices(target.parties) });
  try {
    const subShares: WrappedShareJson[] = [];
    for (let j = 1; j <= target.parties; j++) {
      subShares.push(
        await wrapSubShare(
          dealt.subShares.get(j)!,
          {
            keyId: binding.keyId,
            keyVersion: binding.keyVersion,
            source: key.publicKey,
            dealer: key.secret.index,
            recipient: j,
            target,
            commitments: dealt.commitments,
          },
          recipientKeys[j - 1]!,
        ),
      );
    }
    return { commitments: dealt.commitments.map(toHex), wrappedShares: subShares };
  } finally {
    for (const v of dealt.subShares.values()) zeroize(v);
  }
}

/**
 * Destination node `recipient`: open its sub-share from every dealer of a version 2 bundle with this
 * node's import key and combine them (core/reshare.ts combineSubShares) into its share of the bundle's
 * new package. A sub-share that does not open, or opens off its dealer's committed polynomial, fails
 * with the dealer named. The caller owns and zeroizes the returned share's value.
 */
export async function openImportSubShares(bundle: KeyBundle, importKey: WrappingKeyPair, recipient: number): Promise<SecretShare> {
  const r = bundle.resharing;
  ensure(r !== undefined, ErrorCode.BadInput, 'import: the bundle carries no sub-shares (version 1)');
  const opened = new Map<number, Uint8Array>();
  try {
    for (const d of r.dealers) opened.set(d.index, await unwrapSubShare(bundle, importKey, d.index, recipient));
    try {
      return combineSubShares(r.source, r.dealt, opened, recipient, bundle.package);
    } catch (e) {
      if (e instanceof TesseraError && e.culprits.length > 0) {
        // The culprits are source nodes (dealers), not peers in this session: name them in words only.
        const who = e.culprits.length === 1 ? `dealer ${e.culprits[0]}` : `dealers ${e.culprits.join(', ')}`;
        throw new TesseraError(e.code, `the bundle's ${who} (source cluster node) dealt node ${recipient} a bad sub-share: ${e.message}`);
      }
      throw e;
    }
  } finally {
    for (const v of opened.values()) zeroize(v);
  }
}
