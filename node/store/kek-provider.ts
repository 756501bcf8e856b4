/**
 * The node's KEK provider (issue 15): opens the KEKs its config names (node/config.ts KekSource) as Kek
 * objects for the store (node/store/kek.ts, node/store/envelope.ts).
 *
 *   file, env       RawKek over the 32 bytes of the key file or TESSERA_KEK
 *   pkcs11          node/store/kek-pkcs11.ts: the KEK is a non-extractable AES key in a token
 *   shamir-unseal   node/store/kek-unseal.ts: the KEK exists only after K operators' shares were submitted;
 *                   the node starts sealed, so this is never opened here
 *
 * `current` wraps every new data key. `others` can only unwrap: the KEK a rotation is moving records to
 * (or from) when a crash interrupted it, so every record opens whichever side of the rotation it is on.
 */
import { access } from 'node:fs/promises';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import type { KekSource } from '../config.js';
import { RawKek, loadKek, readKekFile, type Kek } from './kek.js';

export interface NodeKeks {
  readonly current: Kek;
  readonly others: readonly Kek[];
}

/** The path of the next KEK file while a rotation of a file KEK is unfinished (node/store/kek-rotation.ts). */
export function nextKekFilePath(path: string): string {
  return `${path}.next`;
}

export async function openNodeKeks(source: KekSource, nodeIndex: number): Promise<NodeKeks> {
  if (source.kind === 'env' || source.kind === 'file') {
    const bytes = await loadKek(source);
    const current = new RawKek(bytes, source.kind);
    bytes.fill(0);
    const others: Kek[] = [];
    if (source.kind === 'file' && (await exists(nextKekFilePath(source.path)))) {
      const next = await readKekFile(nextKekFilePath(source.path));
      others.push(new RawKek(next, 'file'));
      next.fill(0);
    }
    return { current, others };
  }
  if (source.kind === 'pkcs11') {
    const { openPkcs11Keks } = await import('./kek-pkcs11.js');
    return openPkcs11Keks(source, nodeIndex);
  }
  throw new TesseraError(ErrorCode.BadState, 'the KEK of a shamir-unseal node exists only once the node is unsealed (`tessera unseal`)');
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
