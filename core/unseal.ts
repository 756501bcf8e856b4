/**
 * What the node and the SDK agree on about operator unseal shares (issue 15, shamir-unseal KEK provider;
 * node/store/kek-unseal.ts, node/sealed.ts, sdk/unseal.ts): a share's length and the associated data a
 * share is sealed with to its operator's ML-KEM-768 (or X-Wing) key (core/wrap.ts sealToReceiver), so a
 * sealed share opens only as share `shareIndex` of node `node` for the KEK named `keyCheckValue`.
 */
import { framed, i2osp, utf8ToBytes } from './bytes.js';

/** A share: 32 bytes of GF(256) polynomial values and its x coordinate (the shamir-secret-sharing encoding). */
export const UNSEAL_SHARE_LENGTH = 33;

const SHARE_AAD_LABEL = utf8ToBytes('tessera/unseal/share/v1');

export function unsealShareAad(node: number, shareIndex: number, keyCheckValue: string): Uint8Array {
  return framed(SHARE_AAD_LABEL, i2osp(node, 1), i2osp(shareIndex, 1), utf8ToBytes(keyCheckValue));
}
