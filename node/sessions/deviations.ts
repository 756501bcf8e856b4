/**
 * The malicious-node harness (test only, like the crash points of TESSERA_FAULT_POINTS): scripted
 * deviations a node follows when TESSERA_TEST_DEVIATIONS is set, so real clusters can be run with one
 * cheating node. Never set in production: node/main.ts logs a warning when it is.
 *
 *   wrong-confirm-to:N[+M]   send a wrong DKG/refresh confirmation to nodes N, M only
 *   withhold-vote-to:N[+M]   do not send this node's commit vote to nodes N, M
 *   claim-epoch-ahead        claim (in the channel hello) an epoch one above the one held, with no certificate
 */
import { ErrorCode, TesseraError } from '../../core/errors.js';

export interface Deviations {
  readonly wrongConfirmTo?: readonly number[];
  readonly withholdVote?: readonly number[];
  readonly claimEpochAhead?: boolean;
}

function nodes(v: string, what: string): number[] {
  const out = v.split('+').map((x) => Number(x));
  if (out.length === 0 || out.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 255)) {
    throw new TesseraError(ErrorCode.BadInput, `TESSERA_TEST_DEVIATIONS: ${what} needs node indexes, e.g. ${what}:2+3`);
  }
  return out;
}

/** Parse TESSERA_TEST_DEVIATIONS (comma-separated); unknown names are refused. */
export function parseDeviations(env: string | undefined): Deviations | undefined {
  if (env === undefined || env.trim() === '') return undefined;
  const d: { wrongConfirmTo?: number[]; withholdVote?: number[]; claimEpochAhead?: boolean } = {};
  for (const item of env.split(',').map((s) => s.trim())) {
    const [name, arg] = item.split(':');
    if (name === 'wrong-confirm-to' && arg) d.wrongConfirmTo = nodes(arg, name);
    else if (name === 'withhold-vote-to' && arg) d.withholdVote = nodes(arg, name);
    else if (name === 'claim-epoch-ahead' && arg === undefined) d.claimEpochAhead = true;
    else throw new TesseraError(ErrorCode.BadInput, `TESSERA_TEST_DEVIATIONS: unknown deviation ${item.slice(0, 40)}`);
  }
  return d;
}
