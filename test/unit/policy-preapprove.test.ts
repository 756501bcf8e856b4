/**
 * The preapprove-rotation policy rule (node/governance/policy.ts; issue 15 item 3): a node's operator
 * pre-approves emergency rotation for one API key it handed out. In scope only rotate and repair pass,
 * everything else is denied, and after `until` everything is; other rules still deny (first deny wins,
 * also over a pre-approval); an unreadable policy still fails closed. Each operation the rule admits is
 * audited by the gate (node/governance/gate.ts) as a warning naming the rule.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Packr } from 'msgpackr';
import { generateIdentity, loadIdentityEngine, type IdentityKeyPair } from '../../core/identity.js';
import { ErrorCode, TesseraError } from '../../core/errors.js';
import { AUDIT_NAMESPACE, AuditLog } from '../../node/governance/audit.js';
import { OperationGate } from '../../node/governance/gate.js';
import { POLICY_NAMESPACE, PolicyEngine, validateRules, type PolicyRequest } from '../../node/governance/policy.js';
import { useTempStores } from '../helpers/temp-store.js';

let identity: IdentityKeyPair;
beforeAll(async () => {
  await loadIdentityEngine();
  identity = generateIdentity();
});
const { open, onCleanup } = useTempStores('tessera-preapprove-');

async function openNode() {
  const clock = { t: 1_700_000_000_000 };
  const now = () => clock.t;
  const store = await open();
  const audit = await AuditLog.open({ records: store.namespace(AUDIT_NAMESPACE), identity, checkpointIntervalMs: 0, now });
  const policy = await PolicyEngine.open({ records: store.namespace(POLICY_NAMESPACE), audit, now });
  onCleanup(async () => {
    await policy.close();
    await audit.close();
  });
  return { store, audit, policy, clock };
}

const req = (o: Partial<PolicyRequest> = {}): PolicyRequest => ({ tenant: 'acme', apiKeyId: 'ak_emergency', operation: 'rotate', keyId: 'k1', ...o });
const EMERGENCY = { id: 'em', type: 'preapprove-rotation', scope: { apiKeyId: 'ak_emergency' } } as const;

describe('preapprove-rotation', () => {
  it('its API key may rotate and repair, nothing else; other API keys are out of its scope', async () => {
    const n = await openNode();
    await n.policy.setRules([EMERGENCY], 'admin');
    expect(await n.policy.evaluate(req())).toEqual({ allow: true, preapprovedBy: 'em' });
    expect(await n.policy.evaluate(req({ operation: 'repair' }))).toEqual({ allow: true, preapprovedBy: 'em' });
    for (const operation of ['sign', 'keygen', 'export', 'destroy', 'retire', 'decline', 'reshare', 'rotation.set'] as const) {
      expect(await n.policy.evaluate(req({ operation })), operation).toEqual({
        allow: false,
        rule: 'em',
        reason: `rule em: this API key holds only a pre-approval of emergency rotation (rotate, repair), not ${operation}`,
      });
    }
    // The operator's own key: not in scope, no pre-approval and no restriction.
    expect(await n.policy.evaluate(req({ apiKeyId: 'ak_operator', operation: 'sign' }))).toEqual({ allow: true });
    expect(await n.policy.evaluate(req({ apiKeyId: 'ak_operator' }))).toEqual({ allow: true });
  });

  it('narrowed by tenant and key; ends at `until` (the node clock); a deny still wins, before or after it', async () => {
    const n = await openNode();
    const until = n.clock.t + 60_000;
    await n.policy.setRules(
      [
        { id: 'em', type: 'preapprove-rotation', scope: { apiKeyId: 'ak_emergency', tenant: 'acme' }, until },
        { id: 'no-rotate-k9', type: 'deny', scope: { keyId: 'k9' }, operations: ['rotate'] },
      ],
      'admin',
    );
    expect(await n.policy.evaluate(req())).toEqual({ allow: true, preapprovedBy: 'em' });
    expect((await n.policy.evaluate(req({ keyId: 'k9' }))).allow).toBe(false); // the later deny
    expect(await n.policy.evaluate(req({ tenant: 'globex' }))).toEqual({ allow: true }); // out of its scope: not pre-approved
    n.clock.t = until;
    expect(await n.policy.evaluate(req())).toEqual({ allow: false, rule: 'em', reason: `rule em: the emergency rotation pre-approval ended at ${new Date(until).toISOString()}` });
    expect(await n.policy.evaluate(req({ operation: 'repair' }))).toMatchObject({ allow: false, rule: 'em' });
  });

  it('validation: one API key named, until an integer, no other fields', () => {
    expect(validateRules([{ ...EMERGENCY, until: 5 }])).toEqual([{ ...EMERGENCY, until: 5 }]);
    const bad: [unknown, RegExp][] = [
      [{ id: 'em', type: 'preapprove-rotation' }, /scope\.apiKeyId is required/],
      [{ id: 'em', type: 'preapprove-rotation', scope: { tenant: 'acme' } }, /scope\.apiKeyId is required/],
      [{ ...EMERGENCY, until: -1 }, /until must be an integer/],
      [{ ...EMERGENCY, until: '2030-01-01' }, /until must be an integer/],
      [{ ...EMERGENCY, until: 1.5 }, /until must be an integer/],
      [{ ...EMERGENCY, operations: ['sign'] }, /unknown field "operations"/],
    ];
    for (const [rule, message] of bad) {
      expect(() => validateRules([rule]), JSON.stringify(rule)).toThrow(message);
    }
  });

  it('fails closed: with the rule document unreadable its key is refused (UNAVAILABLE), not pre-approved', async () => {
    const n = await openNode();
    await n.policy.setRules([EMERGENCY], 'admin');
    await n.store.namespace(POLICY_NAMESPACE).put('rules', Uint8Array.from(new Packr({ useRecords: false }).pack({ v: 1, version: 'x' })), { sync: true });
    const e = await n.policy.evaluate(req()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TesseraError);
    expect((e as TesseraError).code).toBe(ErrorCode.Unavailable);
  });

  it('the gate audits every operation the rule admits as a warning naming the rule; a refusal as denied', async () => {
    const n = await openNode();
    await n.policy.setRules([EMERGENCY], 'admin');
    const gate = new OperationGate({ audit: n.audit, policy: n.policy, decline: () => undefined, logger: pino({ level: 'silent' }) });
    const principal = { tenant: 'acme', apiKeyId: 'ak_emergency', role: 'tenant' as const };
    expect(await gate.run({ principal, operation: 'rotate', authorize: 'policy', keyId: 'k1' }, async () => ({ version: 1 }), async () => 'rotated')).toBe('rotated');
    const refused = await gate.run({ principal, operation: 'sign', authorize: 'policy', keyId: 'k1' }, async () => ({ version: 1 }), async () => 'signed').catch((x: unknown) => x);
    expect((refused as TesseraError).code).toBe(ErrorCode.PolicyDenied);
    const entries = (await n.audit.exportLog({ checkpoint: false })).entries.map((e) => JSON.parse(JSON.stringify(e)) as Record<string, unknown>);
    const rotate = entries.filter((e) => e.operation === 'rotate');
    expect(rotate.map((e) => [e.outcome, e.severity, e.actor, e.reason])).toEqual([
      ['started', 'warning', 'ak_emergency', 'pre-approved emergency rotation (policy rule em)'],
      ['ok', 'warning', 'ak_emergency', 'pre-approved emergency rotation (policy rule em)'],
    ]);
    expect(entries.filter((e) => e.operation === 'sign').map((e) => e.outcome)).toEqual(['denied']);
  });
});
