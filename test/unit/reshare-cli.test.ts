/**
 * `tessera reshare` and `tessera keys info` on the command line, and Cluster.reshare's own input checks,
 * without a cluster (issue 13): every usage error exits 2 with one line naming the flag before any
 * cluster file is read, and the SDK refuses bad committees before it sends anything (its nodes here
 * listen nowhere, so any request would fail differently).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeError, exitStatusOf, main } from '../../sdk/cli.js';
import { Cluster, NodeClient, TesseraClientError } from '../../sdk/client.js';

const NO_CLUSTER = join(tmpdir(), 'tessera-no-such-dir', 'cluster.json');
let savedCluster: string | undefined;
beforeAll(() => {
  savedCluster = process.env.TESSERA_CLUSTER;
  process.env.TESSERA_CLUSTER = NO_CLUSTER;
});
afterAll(() => {
  if (savedCluster === undefined) delete process.env.TESSERA_CLUSTER;
  else process.env.TESSERA_CLUSTER = savedCluster;
});

/** main(argv) in this process: its exit status and the one error line run() would print; stdout must stay empty. */
async function cli(argv: string[]): Promise<{ code: number; error?: string; stdout: string }> {
  let stdout = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await main(argv), stdout };
  } catch (e) {
    return { code: exitStatusOf(e), error: describeError(e), stdout };
  } finally {
    process.stdout.write = write;
  }
}

const base = ['reshare', '--key-id', 'k'];

describe('tessera reshare: usage errors exit 2 naming the flag, before any cluster is read', () => {
  it.each<[string, string[], RegExp]>([
    ['no --threshold', [...base, '--nodes', '1,2,3'], /^tessera: --threshold is required \(see tessera reshare --help\)$/],
    ['no --nodes', [...base, '--threshold', '2'], /^tessera: --nodes is required \(see tessera reshare --help\)$/],
    ['no --key-id', ['reshare', '--threshold', '2', '--nodes', '1,2'], /^tessera: --key-id is required/],
    ['one node', [...base, '--threshold', '2', '--nodes', '4'], /^tessera: --nodes: give at least 2 nodes .*got 1 \(see tessera reshare --help\)$/],
    ['a node twice', [...base, '--threshold', '2', '--nodes', '1,2,2'], /--nodes: a node is listed twice in "1,2,2"/],
    ['node 0', [...base, '--threshold', '2', '--nodes', '0,1'], /--nodes: node numbers start at 1, got 0/],
    ['node 256', [...base, '--threshold', '2', '--nodes', '1,256'], /--nodes: node numbers start at 1, got 256/],
    ['not numbers', [...base, '--threshold', '2', '--nodes', 'one,two'], /--nodes: expected comma-separated node numbers/],
    ['threshold 1', [...base, '--threshold', '1', '--nodes', '1,2'], /--threshold: expected 2\.\.255, got 1/],
    ['threshold 256', [...base, '--threshold', '256', '--nodes', '1,2'], /--threshold: expected 2\.\.255, got 256/],
    ['threshold not a number', [...base, '--threshold', 'two', '--nodes', '1,2'], /--threshold: expected a whole number, got "two"/],
    ['threshold above the committee', [...base, '--threshold', '4', '--nodes', '1,2,3'], /^tessera: --threshold 4 is above the number of --nodes \(3\) \(see tessera reshare --help\)$/],
    ['one dealer', [...base, '--threshold', '2', '--nodes', '1,2', '--dealers', '3'], /--dealers: give at least 2 nodes/],
    ['a dealer twice', [...base, '--threshold', '2', '--nodes', '1,2', '--dealers', '3,3'], /--dealers: a node is listed twice/],
    ['version 0', [...base, '--threshold', '2', '--nodes', '1,2', '--version', '0'], /--version: expected at least 1, got 0/],
    ['an unknown option', [...base, '--threshold', '2', '--nodes', '1,2', '--committee', '1,2'], /^tessera: unknown option --committee \(see tessera reshare --help\)$/],
    ['a stray argument', [...base, '--threshold', '2', '--nodes', '1,2', 'now'], /unexpected argument "now"/],
  ])('%s', async (_what, argv, pattern) => {
    const r = await cli(argv);
    expect(r.code, r.error).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.error).toMatch(pattern);
    expect(r.error).not.toMatch(/\n|^\s*at\s|must NOT|instancePath/);
  });

  it('a valid command line gets as far as the cluster file: a missing one is an operation failure (exit 1), not a usage error', async () => {
    const r = await cli([...base, '--threshold', '3', '--nodes', '1,2,4,5', '--dealers', '1,2']);
    expect(r.code).toBe(1);
    expect(r.error).toContain(NO_CLUSTER);
  });

  it('keys info needs --key-id; --help names every option of both commands', async () => {
    const info = await cli(['keys', 'info']);
    expect(info.code).toBe(2);
    expect(info.error).toMatch(/^tessera: --key-id is required \(see tessera keys info --help\)$/);
    const help = await cli(['reshare', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--key-id', '--threshold', '--nodes', '--dealers', '--version', '--json']) expect(help.stdout).toContain(flag);
    expect((await cli(['keys', 'info', '--help'])).stdout).toMatch(/committee/);
  });
});

describe('Cluster.reshare refuses a bad committee before it asks any node', () => {
  // Nodes that listen nowhere: an input check that let a call through would fail with UNAVAILABLE instead.
  const cluster = new Cluster(Array.from({ length: 5 }, (_, k) => new NodeClient({ url: `http://127.0.0.1:9/${k + 1}`, apiKey: 'test-key-0123456789', index: k + 1, timeoutMs: 1000 })));

  it.each<[string, Parameters<Cluster['reshare']>[1], RegExp]>([
    ['a node twice', { threshold: 2, nodes: [1, 2, 2] }, /nodes: node 2 is listed twice/],
    ['a node outside the cluster', { threshold: 2, nodes: [1, 6] }, /nodes: 6 is not a node of this cluster \(1\.\.5\)/],
    ['node 0', { threshold: 2, nodes: [0, 1] }, /nodes: 0 is not a node of this cluster/],
    ['not an integer', { threshold: 2, nodes: [1, 2.5] }, /nodes: 2\.5 is not a node of this cluster/],
    ['an empty committee', { threshold: 2, nodes: [] }, /nodes: expected a non-empty list/],
    ['one node', { threshold: 2, nodes: [3] }, /nodes must name 2\.\.255 nodes, got 1/],
    ['threshold above the committee', { threshold: 4, nodes: [1, 2, 3] }, /threshold 4 must be 2\.\.3/],
    ['threshold 1', { threshold: 1, nodes: [1, 2, 3] }, /threshold 1 must be 2\.\.3/],
    ['no options', undefined as never, /reshare: expected options/],
  ])('%s', async (_what, options, pattern) => {
    const e = await cluster.reshare('k', options).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TesseraClientError);
    expect((e as TesseraClientError).code).toBe('BAD_INPUT');
    expect((e as TesseraClientError).message).toMatch(pattern);
    for (const n of cluster.nodes) expect(n.liveness.failedAt).toBeUndefined();
  });
});
