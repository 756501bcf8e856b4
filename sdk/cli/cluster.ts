/**
 * Cluster membership (issue 13, items 2 and 3; admin API keys of every node): show the nodes'
 * membership, add a node, remove one, replace one (the repair of a node that lost its data directory:
 * same index, new identity), and reshare every key onto the membership. Each change is one certified
 * session of every member it keeps (every operator's hook approves it, sdk/client.ts
 * Cluster.changeMembership); then every key of every tenant is reshared, one progress line per key
 * version on stderr, and the cluster file is rewritten atomically (temp file + rename, mode 0600) as
 * soon as the change is committed, so a rerun of the same command (or `tessera cluster reshare-all`)
 * after a crash resumes where it stopped.
 */
import { readFileSync } from 'node:fs';
import { TesseraClientError } from '../http.js';
import type { MembershipOpResult, ReshareAllResult } from '../client.js';
import type { ClusterFile } from '../cluster-file.js';
import { clusterOf, print, type ClusterContext } from './context.js';
import { UsageError, type Args, type CommandSpec, type OptionSpec } from './spec.js';

const INDEX: OptionSpec = { name: 'index', kind: 'int', value: 'N', help: 'the node index (1..255)', required: true, min: 1, max: 255 };
const IDENTITY: OptionSpec = { name: 'identity', kind: 'hex', value: 'HEX', help: "the node's ML-DSA-65 identity public key (hex, 1952 bytes; its GET /v1/node identityPublicKey)" };
const IDENTITY_FILE: OptionSpec = { name: 'identity-file', kind: 'string', value: 'FILE', help: 'a file holding the identity public key: hex, or JSON with an identityPublicKey field (the node\'s /v1/node answer)' };
const CONCURRENCY: OptionSpec = { name: 'concurrency', kind: 'int', value: 'C', help: 'keys reshared at once (the versions of one key one after another)', default: '2', min: 1, max: 64 };
const CA: OptionSpec = { name: 'ca', kind: 'string', value: 'FILE', help: "the node's PEM certificate to pin (https)" };

const RESUME_NOTE =
  'Every key version of every tenant (active, retired or archived) then moves onto the new membership: its committee minus removed nodes, plus added ones, with its threshold unchanged; one line per version on stderr ("[k/N] tenant/key vV: resharing onto 1,2,4 ... done", "skipped (already on the membership)" or "failed: reason"). The cluster file is rewritten (atomically, mode 0600) as soon as the change is committed. After a crash, run the same command again (or `tessera cluster reshare-all`): what is done is skipped. Exit 1 if any key version could not move (each is listed).';

/** The identity key from --identity or --identity-file (exactly one), as hex. Length and hex are checked by the SDK. */
function identityOf(a: Args, required: boolean): string | undefined {
  const hex = a.string('identity');
  const file = a.string('identity-file');
  const cmd = a.command.path.join(' ');
  if (hex !== undefined && file !== undefined) throw new UsageError('give --identity or --identity-file, not both', cmd);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(`--identity-file: ${file}: ${code === 'ENOENT' ? 'no such file' : 'cannot be read'}`, cmd);
    }
    if (text.startsWith('{')) {
      try {
        const v = (JSON.parse(text) as { identityPublicKey?: unknown }).identityPublicKey;
        if (typeof v === 'string') text = v;
      } catch {
        throw new UsageError(`--identity-file: ${file}: not valid JSON`, cmd);
      }
    }
    const clean = text.replace(/^0x/i, '').replace(/\s+/g, '');
    if (!/^([0-9a-fA-F]{2})+$/.test(clean)) throw new UsageError(`--identity-file: ${file}: expected the identity public key in hex`, cmd);
    return checkedLength(clean.toLowerCase(), '--identity-file', cmd);
  }
  if (hex !== undefined) return checkedLength(hex, '--identity', cmd);
  if (required) throw new UsageError('give the node\'s identity public key: --identity HEX or --identity-file FILE', cmd);
  return undefined;
}

function checkedLength(hex: string, flag: string, cmd: string): string {
  if (hex.length !== 2 * 1952) throw new UsageError(`${flag}: an ML-DSA-65 identity public key is 1952 bytes, got ${hex.length / 2}`, cmd);
  return hex;
}

function urlOf(a: Args, required: boolean): string | undefined {
  const url = a.string('url');
  const cmd = a.command.path.join(' ');
  if (url === undefined) {
    if (required) throw new UsageError('--url is required', cmd);
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--url: not a URL: "${url.slice(0, 60)}"`, cmd);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--url: expected http:// or https://, got ${u.protocol}`, cmd);
  return url;
}

function caOf(a: Args): string | undefined {
  const file = a.string('ca');
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`--ca: ${file}: cannot be read`, a.command.path.join(' '));
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca: ${file}: expected a PEM certificate`, a.command.path.join(' '));
  return pem;
}

/** One plain progress line on stderr (every step of a change and every key version: an operator follows a long change, and a log keeps it). */
function stderrLine(line: string): void {
  process.stderr.write(`tessera cluster: ${line}\n`);
}

/** Rewrite the cluster file with the change (sdk/membership.ts clusterFileAfterChange; atomic, 0600). */
async function rewriteClusterFile(ctx: ClusterContext, change: Parameters<typeof import('../membership.js').clusterFileAfterChange>[1]): Promise<ClusterFile> {
  const { clusterFileAfterChange, writeClusterFileAtomic } = await import('../membership.js');
  const next = clusterFileAfterChange(ctx.file, change);
  writeClusterFileAtomic(ctx.path, next);
  stderrLine(`cluster file ${ctx.path} rewritten (nodes ${next.nodes.map((n) => n.index).join(',')})`);
  return next;
}

/** Print what a change did; exit 1 (after printing) when some key version could not move. */
function report(a: Args, ctx: ClusterContext, r: { membership?: MembershipOpResult['membership']; reshare: ReshareAllResult }): number {
  const m = r.membership;
  if (a.json) {
    print(true, {
      ...(m ? { epoch: m.epoch, members: m.members.map((x) => x.index), change: m.change, resumed: m.resumed, nodes: m.nodes } : {}),
      reshare: r.reshare,
      clusterFile: ctx.path,
    });
  } else {
    if (m) {
      const c = m.change;
      const what = [c.added.length ? `added ${c.added.join(',')}` : '', c.removed.length ? `removed ${c.removed.join(',')}` : '', c.replaced.length ? `replaced ${c.replaced.join(',')}` : ''].filter(Boolean).join('; ');
      print(false, { epoch: m.epoch, members: m.members.map((x) => x.index).join(','), change: `${what || 'none'}${m.resumed ? ' (already committed: resumed)' : ''}` });
      for (const n of m.nodes) if (n.error) process.stdout.write(`node ${n.node}: ${n.outcome} (${n.error})\n`);
    }
    const s = r.reshare;
    print(false, { keys: `${s.total} version(s): ${s.reshared} reshared, ${s.skipped} already on the membership, ${s.failed} failed`, clusterFile: ctx.path });
  }
  if (r.reshare.failed > 0) {
    const f = r.reshare.failures[0]!;
    throw new TesseraClientError(
      'RESHARE_INCOMPLETE',
      `${r.reshare.failed} key version(s) did not move onto the membership (first: ${f.tenant}/${f.keyId} v${f.version}: ${f.reason}); fix the cause and run \`tessera cluster reshare-all\``,
    );
  }
  return 0;
}

export const CLUSTER_COMMANDS: CommandSpec[] = [
  {
    path: ['cluster', 'membership'],
    summary: "show every node's committed cluster membership: its epoch and members, and which nodes lag or diverge",
    uses: 'cluster',
    options: [],
    details: [
      'A node BEHIND holds an older epoch (it missed a change: rerunning the change finishes it); one DIVERGED holds another membership at an epoch. --json: {"agreed", "epoch", "members": [{index, identityPublicKey}], "digest", "nodes": [{node, epoch, digest, status, error}]}.',
    ],
    async run(a) {
      const { cluster } = await clusterOf(a);
      const { membersToJson } = await import('../membership.js');
      const r = await cluster.membership();
      if (a.json) {
        const { membership, ...rest } = r;
        print(true, { ...rest, ...(membership ? { members: membersToJson(membership) } : {}) });
      } else {
        process.stdout.write(`epoch ${r.epoch}: members ${r.membership ? r.membership.members.map((m) => m.index).join(',') : '(none answered)'}; ${r.agreed ? 'every node agrees' : 'the nodes DO NOT agree'}\n`);
        for (const n of r.nodes) process.stdout.write(`node ${n.node}: ${n.status}${n.epoch !== undefined ? ` (epoch ${n.epoch})` : ''}${n.error ? `: ${n.error}` : ''}\n`);
      }
      return r.agreed ? 0 : 1;
    },
    exitNote: '0 only if every node answered with the same membership',
  },
  {
    path: ['cluster', 'add-node'],
    summary: 'add a node to the cluster (every operator approves), then reshare every key onto it',
    uses: 'cluster',
    options: [
      INDEX,
      { name: 'url', kind: 'string', value: 'URL', help: "the new node's API URL", required: true },
      { name: 'api-key', kind: 'string', value: 'KEY', help: "an admin API key of the new node (written to the cluster file)", required: true },
      IDENTITY,
      IDENTITY_FILE,
      CA,
      CONCURRENCY,
    ],
    details: [
      'Start the new node first, configured with the new membership (the current members and itself, at the next epoch). The change is a certified session of every current member; the new node is handed its certificate.',
      RESUME_NOTE,
    ],
    examples: ['tessera cluster add-node --index 4 --url https://node4.example:7704 --api-key $KEY4 --identity-file node4.identity --ca node4.pem'],
    async run(a) {
      const index = a.int('index')!;
      const identityPublicKey = identityOf(a, true)!;
      const url = urlOf(a, true)!;
      const apiKey = a.string('api-key')!;
      if (apiKey === '') throw new UsageError('--api-key: expected the API key', 'cluster add-node');
      const ca = caOf(a);
      const ctx = await clusterOf(a);
      const node = { index, url, apiKey, identityPublicKey, ...(ca !== undefined ? { ca } : {}) };
      const r = await ctx.cluster.addNode(node, {
        onProgress: stderrLine,
        ...(a.int('concurrency') !== undefined ? { concurrency: a.int('concurrency') } : {}),
        onCommitted: async () => void (await rewriteClusterFile(ctx, { added: [node] })),
      });
      return report(a, ctx, r);
    },
  },
  {
    path: ['cluster', 'remove-node'],
    summary: 'remove a node from the cluster (every other operator approves), then reshare every key off it',
    uses: 'cluster',
    options: [INDEX, CONCURRENCY],
    details: [
      'Refused up front when a key would be left with fewer nodes than its threshold (reshare it to a lower threshold first), or when fewer than 2 members would remain. The removed node does not vote; its shares die: the other holders move to a new epoch, which its old share never combines with.',
      RESUME_NOTE,
    ],
    examples: ['tessera cluster remove-node --index 2'],
    async run(a) {
      const index = a.int('index')!;
      const ctx = await clusterOf(a);
      const r = await ctx.cluster.removeNode(index, {
        onProgress: stderrLine,
        ...(a.int('concurrency') !== undefined ? { concurrency: a.int('concurrency') } : {}),
        onCommitted: async () => void (ctx.file.nodes.some((n) => n.index === index) && (await rewriteClusterFile(ctx, { removed: [index] }))),
      });
      return report(a, ctx, r);
    },
  },
  {
    path: ['cluster', 'replace-node'],
    summary: 'repair a node that lost its data directory: same index, new identity; its shares are re-dealt to it',
    uses: 'cluster',
    options: [
      INDEX,
      IDENTITY,
      IDENTITY_FILE,
      { name: 'url', kind: 'string', value: 'URL', help: "the node's API URL, if it changed", default: 'the cluster file\'s' },
      { name: 'api-key', kind: 'string', value: 'KEY', help: "the node's admin API key, if it changed", default: "the cluster file's" },
      CA,
      CONCURRENCY,
    ],
    details: [
      'Start the node again with an empty data directory (it makes a new identity) and the new membership (its new identity at the next epoch). The change is a certified session of every other member; then every key the node held is re-dealt to it by the other holders (a reshare onto the same committee: no helper learns its share), and the change is in every node\'s audit log.',
      RESUME_NOTE,
    ],
    examples: ['tessera cluster replace-node --index 3 --identity-file node3.identity'],
    async run(a) {
      const index = a.int('index')!;
      const identityPublicKey = identityOf(a, true)!;
      const url = urlOf(a, false);
      const apiKey = a.string('api-key');
      if (apiKey === '') throw new UsageError('--api-key: expected the API key', 'cluster replace-node');
      const ca = caOf(a);
      const ctx = await clusterOf(a);
      if (!ctx.file.nodes.some((n) => n.index === index)) throw new TesseraClientError('BAD_INPUT', `index ${index}: there is no node ${index} in the cluster file ${ctx.path} (to add a node: tessera cluster add-node)`);
      const node = { index, identityPublicKey, ...(url !== undefined ? { url } : {}), ...(apiKey !== undefined ? { apiKey } : {}), ...(ca !== undefined ? { ca } : {}) };
      const r = await ctx.cluster.replaceNode(node, {
        onProgress: stderrLine,
        ...(a.int('concurrency') !== undefined ? { concurrency: a.int('concurrency') } : {}),
        onCommitted: async () => void (await rewriteClusterFile(ctx, { replaced: [node] })),
      });
      return report(a, ctx, r);
    },
  },
  {
    path: ['cluster', 'reshare-all'],
    summary: 'reshare every key of every tenant onto the current membership (resumes an interrupted change)',
    uses: 'cluster',
    options: [CONCURRENCY],
    details: [
      'What moves is read from the newest membership change the nodes committed: the members that did not vote on it joined (added to the keys they do not hold, re-dealt the keys they held: a replaced node), and nodes no longer members leave every committee. Key versions already there are skipped.',
    ],
    async run(a) {
      const ctx = await clusterOf(a);
      const reshare = await ctx.cluster.reshareAll(undefined, { onProgress: stderrLine, ...(a.int('concurrency') !== undefined ? { concurrency: a.int('concurrency') } : {}) });
      return report(a, ctx, { reshare });
    },
  },
];
