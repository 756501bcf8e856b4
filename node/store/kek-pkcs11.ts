/** Placeholder until the PKCS#11 provider lands (issue 15 item 1): see node/store/kek-provider.ts. */
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { KekSource } from '../config.js';
import type { NodeKeks } from './kek-provider.js';

export async function openPkcs11Keks(_source: Extract<KekSource, { kind: 'pkcs11' }>, _nodeIndex: number): Promise<NodeKeks> {
  throw new TesseraError(ErrorCode.BadState, 'the pkcs11 KEK provider is not built yet');
}
