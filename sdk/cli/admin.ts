/**
 * Administration (an admin API key, as in the dev cluster file): the audit log, tenants, API keys and
 * policy. Each node is administered on its own (its own operator, its own key): these commands act on
 * every node of the cluster file, or on --node I.
 */
import type { AuditEntry, validateAuditFields } from '../../core/audit-verify.js';
import type { Cluster, NodeClient } from '../client.js';
import type { ClusterFile } from '../cluster-file.js';
import { TesseraClientError } from '../http.js';
import { clientOf, clusterOf, print, readJsonFile, selectNodes, writeJsonFile } from './context.js';
import { UsageError, type CommandSpec, type OptionSpec } from './spec.js';

const NODE: OptionSpec = { name: 'node', kind: 'int', value: 'I', help: 'only node I', default: 'every node', min: 1 };

/** What `audit show` prints of one entry: who did what to which key, and how it ended. Entries hold no key material (core/audit-verify.ts). */
export interface AuditEntryView {
  seq: number;
  time?: string;
  operation?: string;
  keyId?: string;
  version?: number;
  outcome?: string;
  tenant?: string;
  /** The API key id (or system actor) that asked. */
  actor?: string;
  severity?: string;
  reason?: string;
  sessionId?: string;
  /** The entry does not parse as an audit entry (`audit verify` says why). */
  malformed?: true;
}

/**
 * An exported entry as a view: its fields checked by the node's own validator (validateAuditFields),
 * only the named fields kept; anything else is shown as malformed, never echoed.
 */
export function viewAuditEntry(raw: unknown, position: number, validate: typeof validateAuditFields): AuditEntryView {
  const r = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Partial<Record<keyof AuditEntry, unknown>>;
  const seq = typeof r.seq === 'number' && Number.isSafeInteger(r.seq) && r.seq >= 1 ? r.seq : position;
  if (typeof r.time !== 'number' || !Number.isSafeInteger(r.time) || r.time < 0) return { seq, malformed: true };
  const { seq: _s, time: _t, prevHash: _p, hash: _h, ...fields } = r;
  let f: ReturnType<typeof validateAuditFields>;
  try {
    f = validate(fields);
  } catch {
    return { seq, malformed: true };
  }
  return {
    seq,
    time: new Date(r.time).toISOString(),
    operation: f.operation,
    ...(f.keyId !== undefined ? { keyId: f.keyId } : {}),
    ...(f.version !== undefined ? { version: f.version } : {}),
    outcome: f.outcome,
    ...(f.tenant !== undefined ? { tenant: f.tenant } : {}),
    ...(f.actor !== undefined ? { actor: f.actor } : {}),
    severity: f.severity,
    ...(f.reason !== undefined ? { reason: f.reason } : {}),
    ...(f.sessionId !== undefined ? { sessionId: f.sessionId } : {}),
  };
}

function auditLine(e: AuditEntryView): string {
  if (e.malformed) return `${String(e.seq).padStart(6)}  (malformed entry: run \`tessera audit verify\`)`;
  const key = e.keyId ? `${e.keyId}${e.version !== undefined ? ` v${e.version}` : ''}` : '-';
  const principal = e.tenant || e.actor ? `${e.tenant ?? '-'}/${e.actor ?? '-'}` : '-';
  const extra = [e.severity !== 'info' ? e.severity : undefined, e.reason].filter(Boolean).join(': ');
  return `${String(e.seq).padStart(6)}  ${e.time}  ${e.operation!.padEnd(12)} ${key.padEnd(20)} ${e.outcome!.padEnd(7)} ${principal}${extra ? `  (${extra})` : ''}`;
}

/** Run `fn` on the selected nodes, in parallel; each result tagged with its node. */
async function eachNode<T extends object>(nodes: number[], cluster: Cluster, fn: (c: NodeClient) => Promise<T>): Promise<({ node: number } & T)[]> {
  return Promise.all(nodes.map(async (i) => ({ node: i, ...(await fn(clientOf(cluster, i))) })));
}

export const ADMIN_COMMANDS: CommandSpec[] = [
  {
    path: ['audit', 'verify'],
    summary: "verify the nodes' audit logs: the hash chain and every signed checkpoint",
    uses: 'cluster',
    options: [NODE],
    details: ['Checkpoints are verified against the identity keys in the cluster file (else the key the node reports, which only shows the log is consistent with what the node claims).'],
    exitNote: '0 only if the chain and every checkpoint of every log verify',
    async run(a) {
      const { cluster, file } = await clusterOf(a);
      const nodes = selectNodes(a, cluster);
      const results: (Awaited<ReturnType<NodeClient['verifyAuditLog']>> & { node: number })[] = [];
      for (const i of nodes) {
        const key = file.nodes.find((n) => n.index === i)?.identityPublicKey;
        results.push({ node: i, ...(await clientOf(cluster, i).verifyAuditLog(key)) });
      }
      const bad = results.filter((r) => !r.complete);
      const report = (r: (typeof results)[number]) => ({
        node: r.node,
        ok: r.ok,
        complete: r.complete,
        entries: r.entries,
        headSeq: r.headSeq,
        signedThrough: r.signedThrough,
        identityKey: r.identityKeySource === 'given' ? 'cluster file' : 'reported by the node',
        problems: r.problems,
      });
      if (a.json) print(true, nodes.length === 1 ? report(results[0]!) : { nodes: results.map(report), ok: bad.length === 0 });
      else for (const r of results) process.stdout.write(`node ${r.node}: ${r.complete ? 'verified' : 'DOES NOT VERIFY'} (${r.entries} entries, signed through ${r.signedThrough})\n`);
      if (bad.length) {
        const first = bad[0]!;
        const p = first.problems[0];
        const why = p ? `${p.kind} at seq ${p.seq}: ${p.message}` : `entries ${first.unsigned?.fromSeq}..${first.unsigned?.toSeq} are not covered by a signed checkpoint`;
        throw new TesseraClientError('AUDIT_VERIFICATION_FAILED', `the audit log of node ${first.node} does not verify: ${why}`);
      }
      return 0;
    },
  },
  {
    path: ['audit', 'show'],
    summary: "show the nodes' audit entries: seq, time, operation, key, outcome, tenant/API key id",
    uses: 'cluster',
    options: [NODE, { name: 'since', kind: 'int', value: 'SEQ', help: 'only entries after seq SEQ (pass the last seq you saw)', default: '0 (every entry)', min: 0 }],
    details: [
      'Entries never hold key material. Showing is not verifying: run `tessera audit verify` to check the chain and the signed checkpoints.',
      'Text output: one block per node, one line per entry. --json: {"node": I, "entries": [...]} with --node, else {"nodes": [{"node", "entries"}, ...]}; each entry has seq, time (ISO 8601), operation, keyId, version, outcome, tenant, actor, severity, reason and sessionId where present.',
    ],
    examples: ['tessera audit show --node 1 --since 40'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const nodes = selectNodes(a, cluster);
      const since = a.int('since') ?? 0;
      const { validateAuditFields } = await import('../../core/audit-verify.js');
      const logs = await eachNode(nodes, cluster, async (c) => {
        const log = await c.auditLog();
        return { entries: log.entries.map((e, k) => viewAuditEntry(e, k + 1, validateAuditFields)).filter((e) => e.seq > since) };
      });
      if (a.json) print(true, nodes.length === 1 ? logs[0]! : { nodes: logs });
      else
        for (const l of logs) {
          process.stdout.write(`node ${l.node}: ${l.entries.length} ${since ? `entries after seq ${since}` : 'entries'}\n`);
          for (const e of l.entries) process.stdout.write(auditLine(e) + '\n');
        }
      return 0;
    },
  },
  {
    path: ['tenant', 'create'],
    summary: 'create a tenant on every node',
    uses: 'cluster',
    args: [{ name: 'NAME', kind: 'string', help: "the tenant's name" }],
    options: [],
    examples: ['tessera tenant create acme --json'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      print(a.json, await cluster.createTenant(String(a.arg('NAME'))));
      return 0;
    },
  },
  {
    path: ['apikey', 'create'],
    summary: 'create an API key of a tenant on every node (one key per node, shown once)',
    uses: 'cluster',
    options: [
      { name: 'tenant', kind: 'string', value: 'NAME', help: 'the tenant the keys act for', required: true },
      { name: 'role', kind: 'choice', value: 'ROLE', choices: ['tenant', 'admin'], help: 'tenant (use keys) or admin (administer the node)', default: 'tenant' },
      { name: 'out', kind: 'string', value: 'CLUSTER_FILE', help: 'also write a cluster file for the tenant: these nodes, each with its new key (0600)' },
    ],
    details: ["The nodes keep only each key's SHA-256: the keys are in this output (and the --out file) and nowhere else."],
    examples: ['tessera apikey create --tenant acme --out acme-cluster.json --json'],
    async run(a) {
      const { cluster, file } = await clusterOf(a);
      const tenant = a.string('tenant')!;
      const role = a.string('role') as 'tenant' | 'admin' | undefined;
      const out = a.string('out');
      const keys = await cluster.createApiKeys(tenant, role);
      if (out !== undefined) {
        // A cluster file for the tenant: the same nodes, each with this tenant's key for it.
        const tenantFile: ClusterFile = { ...file, nodes: file.nodes.map((n) => ({ ...n, apiKey: keys.find((k) => k.node === n.index)!.apiKey })) };
        writeJsonFile(out, tenantFile);
      }
      print(a.json, { tenant, ...(role ? { role } : {}), keys, ...(out !== undefined ? { clusterFile: out } : {}) });
      return 0;
    },
  },
  {
    path: ['apikey', 'list'],
    summary: 'list the API keys each node knows (ids, tenants, roles; never the keys)',
    uses: 'cluster',
    options: [{ name: 'tenant', kind: 'string', value: 'NAME', help: "only this tenant's keys" }, NODE],
    details: ['Each node has its own keys with their own ids. --json: {"nodes": [{"node", "apiKeys": [{id, tenant, role, source, createdAt, revokedAt}]}]}.'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const tenant = a.string('tenant');
      const nodes = await eachNode(selectNodes(a, cluster), cluster, async (c) => ({ apiKeys: await c.listApiKeys(tenant) }));
      if (a.json) print(true, { nodes });
      else
        for (const n of nodes) {
          process.stdout.write(`node ${n.node}: ${n.apiKeys.length} API key(s)${tenant ? ` of tenant ${tenant}` : ''}\n`);
          for (const k of n.apiKeys) {
            const when = k.revokedAt !== undefined ? `revoked ${new Date(k.revokedAt).toISOString()}` : k.createdAt !== undefined ? `created ${new Date(k.createdAt).toISOString()}` : '';
            process.stdout.write(`  ${k.id}  ${k.tenant}  ${k.role}  ${k.source}${when ? `  ${when}` : ''}\n`);
          }
        }
      return 0;
    },
  },
  {
    path: ['apikey', 'revoke'],
    summary: 'revoke API keys by id: the node refuses them from then on',
    uses: 'cluster',
    options: [
      { name: 'id', kind: 'string', value: 'ID', multiple: true, required: true, help: 'the key id (from `apikey create` or `apikey list`); repeat for several' },
      { ...NODE, help: 'only ask node I', default: 'every node (each id is revoked where it exists)' },
    ],
    details: ["An id is a node's own: without --node every node is asked, and an id unknown to a node is skipped there. It fails (exit 1) if an id is unknown to every node asked."],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const nodes = selectNodes(a, cluster);
      const revoked: { node: number; id: string; tenant: string; role: string; revokedAt?: number }[] = [];
      for (const id of a.strings('id')) {
        const found = await Promise.all(
          nodes.map(async (i) => {
            try {
              const k = await clientOf(cluster, i).revokeApiKey(id);
              return { node: i, id: k.id, tenant: k.tenant, role: k.role, ...(k.revokedAt !== undefined ? { revokedAt: k.revokedAt } : {}) };
            } catch (e) {
              if ((e as TesseraClientError).code === 'NOT_FOUND') return undefined;
              throw e;
            }
          }),
        );
        const here = found.filter((x) => x !== undefined);
        if (here.length === 0) throw new TesseraClientError('NOT_FOUND', `no API key ${id} on ${nodes.length === 1 ? `node ${nodes[0]}` : 'any node'}`);
        revoked.push(...here);
      }
      if (a.json) print(true, { revoked });
      else for (const r of revoked) process.stdout.write(`node ${r.node}: revoked ${r.id} (tenant ${r.tenant}, ${r.role})\n`);
      return 0;
    },
  },
  {
    path: ['policy', 'get'],
    summary: "show the nodes' policy rules and fail-open state",
    uses: 'cluster',
    options: [NODE],
    async run(a) {
      const { cluster } = await clusterOf(a);
      print(a.json, { nodes: await eachNode(selectNodes(a, cluster), cluster, (c) => c.getPolicy()) });
      return 0;
    },
  },
  {
    path: ['policy', 'set'],
    summary: "replace the nodes' policy rules (the first deny wins)",
    uses: 'cluster',
    options: [{ name: 'file', kind: 'string', value: 'RULES.json', help: 'a JSON array of rules, or {"rules": [...]}', required: true }, NODE],
    async run(a) {
      const path = a.string('file')!;
      const v = readJsonFile(path) as { rules?: unknown };
      const rules = Array.isArray(v) ? v : v && typeof v === 'object' && Array.isArray(v.rules) ? v.rules : undefined;
      if (!rules) throw new TesseraClientError('BAD_INPUT', `${path}: expected a JSON array of rules or {"rules": [...]}`);
      const { cluster } = await clusterOf(a);
      const set = await eachNode(selectNodes(a, cluster), cluster, (c) => c.setPolicy(rules));
      print(a.json, { nodes: set.map((r) => ({ node: r.node, version: r.version, rules: r.rules.length })) });
      return 0;
    },
  },
  {
    path: ['policy', 'fail-open'],
    summary: 'emergency: let every operation through the policy for a while; it reverts by itself',
    uses: 'cluster',
    options: [{ name: 'minutes', kind: 'number', value: 'M', help: 'how long, in minutes (decimals allowed)', default: "the node's failOpen.defaultMs", min: 0 }, NODE],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const m = a.int('minutes');
      const durationMs = m === undefined ? undefined : Math.round(m * 60_000);
      if (durationMs !== undefined && durationMs < 1) throw new UsageError('--minutes must be more than 0', 'policy fail-open');
      print(a.json, { nodes: await eachNode(selectNodes(a, cluster), cluster, (c) => c.enableFailOpen(durationMs)) });
      return 0;
    },
  },
  {
    path: ['kek', 'rotate'],
    summary: "re-wrap every record of node I under a new KEK, then destroy the old KEK (resumes an interrupted rotation)",
    uses: 'cluster',
    options: [
      { name: 'node', kind: 'int', value: 'I', help: 'the node whose KEK to rotate', min: 1, required: true },
      { name: 'out', kind: 'string', value: 'DIR', help: 'shamir-unseal nodes: the directory for the new operator share files (as `unseal init` writes them)' },
      {
        name: 'operator-key',
        kind: 'string',
        value: 'FILE',
        multiple: true,
        help: "shamir-unseal nodes: operator i's wrapping public key, given N times in operator order (default: plain shares)",
      },
      { name: 'threshold', kind: 'int', value: 'K', help: "shamir-unseal nodes: how many new shares unseal the node (default: the node's K)", min: 2, max: 255 },
      { name: 'operators', kind: 'int', value: 'N', help: "shamir-unseal nodes: how many new shares to make (default: the node's N)", min: 2, max: 255 },
      { name: 'finish', kind: 'flag', help: 'shamir-unseal nodes: finish a rotation whose new shares are already out (no new shares)' },
    ],
    details: [
      "A shamir-unseal node's new KEK must reach its operators as shares first: give --out DIR. The node splits the next KEK into new shares (written to DIR, mode 0600; sealed to --operator-key's keys, else plain), then re-wraps every record. Until the rotation ends the old shares unseal the node (a restart midway finishes it after the old shares unseal it); after it, only the new shares.",
      'If the rotation stopped after the shares were written (an error, not a crash: a crash is finished at the next unseal), `--finish` ends it without new shares.',
    ],
    examples: ['tessera kek rotate --node 1', 'tessera kek rotate --node 3 --out new-shares/ --operator-key alice.key.pub --operator-key bob.key.pub --operator-key carol.key.pub'],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const [node] = selectNodes(a, cluster);
      const out = a.string('out');
      const finish = a.flag('finish');
      const given: Record<string, boolean> = {
        out: out !== undefined,
        'operator-key': a.strings('operator-key').length > 0,
        threshold: a.int('threshold') !== undefined,
        operators: a.int('operators') !== undefined,
        finish,
      };
      const shamirOptions = Object.keys(given).filter((o) => given[o]);
      const { unsealClientOf, operatorKeysOf, writeShareFiles } = await import('./unseal.js');
      const unseal = await unsealClientOf(a);
      const { provider } = await unseal.status();
      let prepared: { keyCheckValue: string; files: string[] } | undefined;
      if (provider !== 'shamir-unseal') {
        if (shamirOptions.length > 0) throw new UsageError(`--${shamirOptions[0]} is for shamir-unseal nodes only; node ${node} keeps its KEK in ${provider}`, 'kek rotate');
      } else if (finish) {
        if (shamirOptions.length > 1) throw new UsageError(`--finish makes no new shares: it takes no --${shamirOptions.find((o) => o !== 'finish')}`, 'kek rotate');
      } else {
        if (out === undefined) throw new UsageError(`node ${node} is a shamir-unseal node: its new KEK reaches the operators as new shares; give --out DIR (or --finish for a rotation whose shares are out)`, 'kek rotate');
        const threshold = a.int('threshold');
        const operators = a.int('operators');
        const operatorKeys = await operatorKeysOf(a, operators, 'kek rotate');
        if (threshold !== undefined && operators !== undefined && threshold > operators) throw new UsageError(`--threshold ${threshold} is more than --operators ${operators}`, 'kek rotate');
        const p = await unseal.prepareKekRotation({
          ...(threshold !== undefined ? { threshold } : {}),
          ...(operators !== undefined ? { operators } : {}),
          ...(operatorKeys.length ? { operatorKeys } : {}),
        });
        // The shares are on disk before any record moves: phase 2 makes them the only ones that unseal.
        prepared = { keyCheckValue: p.keyCheckValue, files: await writeShareFiles(out, p) };
      }
      const r = await clientOf(cluster, node!).rotateKek();
      print(a.json, { node, from: r.from, to: r.to, records: r.records, moved: r.moved, resumed: r.resumed, ...(prepared ? { shareFiles: prepared.files } : {}) });
      return 0;
    },
  },
  {
    path: ['policy', 'fail-open-off'],
    summary: 'end an emergency fail-open now',
    uses: 'cluster',
    options: [NODE],
    async run(a) {
      const { cluster } = await clusterOf(a);
      print(a.json, { nodes: await eachNode(selectNodes(a, cluster), cluster, (c) => c.disableFailOpen()) });
      return 0;
    },
  },
];
