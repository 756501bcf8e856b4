/**
 * The malicious-node harness (issue 9, "Done when"): a real 3-node (t=2) and a real 5-node (t=3)
 * cluster, each with one node restarted under TESSERA_TEST_DEVIATIONS (node/sessions/deviations.ts).
 * For each scripted deviation, in each state-changing operation where it applies (keygen, refresh,
 * rotate, a lifecycle transition; sign for FROST equivocation and the epoch claim):
 * - the honest nodes stay in agreement (same versions, epochs, states and certificate sessions in
 *   NodeClient.commitStatus on every honest node, or the key on none of them);
 * - after `cluster.repair(keyId)` no honest node is left with a staged change waiting;
 * - t honest nodes sign together afterwards (the signature checked by node:crypto, RFC 8032);
 * - an honest node is never named, and the deviating node is named wherever the evidence allows:
 *   the SDK reports it for equivocation in DKG/refresh round 1 or FROST round 1 (two messages it
 *   signed, re-checked by the SDK) and for a message flood (a signed envelope under a round the
 *   operation does not run, core/evidence.ts EnvelopeEvidence, re-checked against core/session.ts
 *   declaredRounds); the honest node that caught a bad share (core/jointfeldman.ts) or a byte flood
 *   (oversized signed messages in declared rounds) names it in its own error, which the SDK does not
 *   turn into a culprit without transferable evidence. A wrong or garbage vote, a wrong confirmation and a bare
 *   epoch claim travel inside the encrypted channel: nobody is named, and the session fails or
 *   finishes by the certificate.
 * A withheld vote after release does not leave anyone waiting here either: the withholding node itself
 * gets every vote, commits, and forwards its certificate (commit/cert), as every other node does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClientError } from '../../sdk/http.js';
import { logEntries, message32, startTestCluster, verifySignature, type TestCluster } from '../helpers/cluster.js';

type Op = 'keygen' | 'refresh' | 'rotate' | 'transition' | 'sign';

/**
 * What the operation must do under the deviation:
 * - 'fails-naming': fail, and the SDK reports the deviating node (and no one else) as the culprit: it
 *   re-checked the transferable evidence (two conflicting messages the node signed, core/evidence.ts);
 * - 'fails-claimed': fail; the honest node that caught the deviation names the deviating node (its
 *   session error and log), but with no evidence the SDK can re-check today (a signed channel message
 *   over the caps, a share that fails its check inside the encrypted channel), so the SDK does not
 *   report it as a culprit (sdk/client.ts vetCulprits); it must never report an honest one;
 * - 'fails': fail, naming no honest node;
 * - 'commits': be reported committed (every honest node holds it);
 * - 'either': fail naming no honest node, or be reported committed (a race decides which: a peer's
 *   certificate against the bad vote, or, for a transition, whether the flooded node staged its
 *   deterministic result before the flood failed its session; when every node staged the same
 *   result, the SDK's repair finishes it, by design). Both must leave the honest nodes in agreement.
 */
type Outcome = 'fails-naming' | 'fails-claimed' | 'fails' | 'commits' | 'either';

interface Case {
  readonly deviation: string;
  readonly ops: readonly (readonly [Op, Outcome])[];
  /**
   * For an 'either' case: the code with which some honest node's session must have failed during the
   * case (its "session failed" log line), so the deviation is shown to have happened even when the
   * call then finished by the certificate.
   */
  readonly honestFailedWith?: string;
}

interface Size {
  readonly nodes: number;
  readonly threshold: number;
  readonly deviator: number;
  /** The signers of a session that includes the deviating node. */
  readonly signersWithDeviator: readonly number[];
}

const SUITE = 'ed25519';

/** The error a call rejects with, or undefined if it resolved. */
async function outcomeOf(p: Promise<unknown>): Promise<TesseraClientError | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(TesseraClientError);
    return e as TesseraClientError;
  }
}

function describeCluster(size: Size, cases: readonly Case[]): void {
  const all = Array.from({ length: size.nodes }, (_, i) => i + 1);
  const honest = all.filter((i) => i !== size.deviator);
  const honestSigners = honest.slice(0, size.threshold);

  describe(`a malicious node ${size.deviator} in a ${size.threshold}-of-${size.nodes} cluster`, () => {
    let tc: TestCluster;

    beforeAll(async () => {
      tc = await startTestCluster({ nodes: size.nodes, threshold: size.threshold, logLevel: 'warn' });
      // Made while every node is honest and shared by every case (so what one deviation leaves behind is
      // what the next one starts from): 'm' for refresh, rotate and sign, 'x' for transitions.
      await tc.cluster.keygen({ suite: SUITE, keyId: 'm' });
      await tc.cluster.keygen({ suite: SUITE, keyId: 'x' });
    }, 180_000);

    afterAll(async () => {
      await tc?.close();
    });

    /** Each honest node's view of a key: versions with epoch, state and certificate session, and any staged change. */
    async function honestViews(keyId: string): Promise<string[]> {
      return Promise.all(
        honest.map(async (i) => {
          try {
            const s = await tc.client(i).commitStatus(keyId);
            return JSON.stringify({ versions: s.versions, staged: s.staged ?? null });
          } catch (e) {
            if ((e as TesseraClientError).code === 'NOT_FOUND') return 'none';
            throw e;
          }
        }),
      );
    }

    async function honestSign(keyId: string): Promise<void> {
      const info = await tc.client(honestSigners[0]!).getKey(keyId);
      const message = message32(`malicious ${keyId} ${Date.now()}`);
      const r = await tc.cluster.sign({ keyId, message, players: [...honestSigners] });
      expect(verifySignature(info.suite, Buffer.from(r.signature, 'hex'), message, Buffer.from(info.publicKey, 'hex'))).toBe(true);
    }

    async function run(op: Op, c: number): Promise<{ keyId: string; call: Promise<unknown> }> {
      switch (op) {
        case 'keygen':
          return { keyId: `g${c}`, call: tc.cluster.keygen({ suite: SUITE, keyId: `g${c}` }) };
        case 'refresh':
          return { keyId: 'm', call: tc.cluster.refresh({ keyId: 'm' }) };
        case 'rotate':
          return { keyId: 'm', call: tc.cluster.rotate({ keyId: 'm' }) };
        case 'transition': {
          // Version 1 of 'x' goes back and forth between active and retired (the honest nodes agree on which).
          const { state } = (await tc.client(honest[0]!).commitStatus('x')).versions.find((v) => v.version === 1)!;
          return { keyId: 'x', call: state === 'active' ? tc.cluster.retire('x', 1) : tc.cluster.activate('x', 1) };
        }
        case 'sign':
          return { keyId: 'm', call: tc.cluster.sign({ keyId: 'm', message: message32(`deviating ${c}`), players: [...size.signersWithDeviator], presigned: false }) };
      }
    }

    for (const [c, k] of cases.entries()) {
      it(`${k.deviation}: ${k.ops.map(([op, o]) => `${op} ${o}`).join(', ')}; the honest nodes agree, repair leaves nothing waiting, t honest nodes sign`, async () => {
        const started = Date.now();
        await tc.dev.kill(size.deviator);
        tc.dev.start(size.deviator, { TESSERA_TEST_DEVIATIONS: k.deviation });
        await tc.dev.ready();
        for (const [op, expected] of k.ops) {
          const opStarted = Date.now();
          const { keyId, call } = await run(op, c);
          const err = await outcomeOf(call);
          const where = `${k.deviation} / ${op}: ${err ? `${err.code} ${err.message}` : 'committed'}`;
          // An honest node is never named.
          for (const culprit of err?.culprits ?? []) expect(honest, where).not.toContain(culprit);
          if (expected === 'fails-naming') expect(err?.culprits, where).toEqual([size.deviator]);
          if (expected === 'fails-claimed') {
            // The honest node that caught it named the deviating node (its "session failed" log line).
            const named = await Promise.all(
              honest.map((i) => logEntries(tc.dir, `node-${i}`, (e) => e.msg === 'session failed' && (e.time as number) >= opStarted && Array.isArray(e.culprits) && e.culprits.includes(size.deviator))),
            );
            expect(named.flat().length, `${where}: no honest node named node ${size.deviator}`).toBeGreaterThan(0);
          }
          if (expected !== 'commits' && expected !== 'either') expect(err, where).toBeDefined();
          if (expected === 'commits') expect(err, where).toBeUndefined();

          // Repair: no honest node is left with a staged change waiting.
          const report = await tc.cluster.repair(keyId);
          for (const n of report.nodes.filter((r) => honest.includes(r.node))) expect(n.waiting, `${where}; repair: ${JSON.stringify(n)}`).toBeUndefined();

          // The honest nodes agree on the key (or all lack it); a reported commit is on every honest node.
          const views = await honestViews(keyId);
          expect(new Set(views).size, `${where}; views: ${views.join(' | ')}`).toBe(1);
          if (!err) expect(views[0], where).not.toBe('none');
          if (op === 'keygen' && views[0] !== 'none') await honestSign(keyId);
        }
        if (k.honestFailedWith) {
          const failed = await Promise.all(
            honest.map((i) => logEntries(tc.dir, `node-${i}`, (e) => e.msg === 'session failed' && e.code === k.honestFailedWith && (e.time as number) >= started)),
          );
          expect(failed.flat().length, `${k.deviation}: no honest node failed with ${k.honestFailedWith}`).toBeGreaterThan(0);
        }
        // Afterwards t honest nodes sign together with the case's key.
        await honestSign('m');
      }, 120_000);
    }
  });
}

describeCluster({ nodes: 3, threshold: 2, deviator: 3, signersWithDeviator: [1, 3] }, [
  { deviation: 'equivocate-dkg-to:1', ops: [['keygen', 'fails-naming'], ['refresh', 'fails-naming'], ['rotate', 'fails-naming']] },
  { deviation: 'equivocate-sign-to:1', ops: [['sign', 'fails-naming']] },
  { deviation: 'bad-share-to:2', ops: [['keygen', 'fails-claimed'], ['refresh', 'fails-claimed'], ['rotate', 'fails-claimed']] },
  { deviation: 'wrong-vote-to:1+2', ops: [['keygen', 'either'], ['refresh', 'either'], ['rotate', 'either'], ['transition', 'either']], honestFailedWith: 'CONFIRMATION_MISMATCH' },
  { deviation: 'garbage-vote-to:1', ops: [['keygen', 'either'], ['transition', 'either']], honestFailedWith: 'CONFIRMATION_MISMATCH' },
  { deviation: 'wrong-confirm-to:2', ops: [['keygen', 'fails'], ['refresh', 'fails'], ['rotate', 'fails']] },
  { deviation: 'withhold-vote-to:1+2', ops: [['refresh', 'commits'], ['transition', 'commits']] },
  { deviation: 'claim-epoch-ahead', ops: [['refresh', 'fails'], ['sign', 'fails']] },
  { deviation: 'flood-messages-to:1', ops: [['keygen', 'fails-naming'], ['transition', 'either']], honestFailedWith: 'BAD_MESSAGE' },
  { deviation: 'flood-bytes-to:2', ops: [['refresh', 'fails-claimed']] },
]);

describeCluster({ nodes: 5, threshold: 3, deviator: 5, signersWithDeviator: [1, 2, 5] }, [
  { deviation: 'equivocate-dkg-to:2+4', ops: [['keygen', 'fails-naming'], ['refresh', 'fails-naming']] },
  { deviation: 'equivocate-sign-to:2', ops: [['sign', 'fails-naming']] },
  { deviation: 'bad-share-to:3', ops: [['rotate', 'fails-claimed']] },
  { deviation: 'wrong-vote-to:1', ops: [['refresh', 'either'], ['transition', 'either']] },
  // (claim-epoch-ahead is the 2-of-3 cluster's case: the same refresh failing the same way, and a sign; each
  // case here costs a node restart.)
  { deviation: 'flood-messages-to:2+3', ops: [['rotate', 'fails-naming']] },
]);
