/**
 * The cluster-file loader (sdk/cluster-file.ts): a valid file gives a Cluster of its nodes in index
 * order; the path defaults to env TESSERA_CLUSTER; every defect is one clear error naming the file and
 * the field (NOT_FOUND for a missing file, BAD_INPUT otherwise). No node is contacted.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCluster, readClusterFile, type ClusterFile } from '../../sdk/cluster-file.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-cluster-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good: ClusterFile = {
  coordinator: 'ws://127.0.0.1:7700',
  threshold: 2,
  nodes: [
    { index: 2, url: 'http://127.0.0.1:7702', apiKey: 'k2', identityPublicKey: '0xAB' },
    { index: 1, url: 'http://127.0.0.1:7701', apiKey: 'k1' },
    { index: 3, url: 'http://127.0.0.1:7703', apiKey: 'k3' },
  ],
};

let n = 0;
function file(content: unknown): string {
  const p = join(dir, `cluster-${n++}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

describe('readClusterFile / loadCluster', () => {
  it('reads a valid file: nodes in index order, identity keys as lowercase hex; loadCluster builds the Cluster', () => {
    const p = file(good);
    const f = readClusterFile(p);
    expect(f.nodes.map((x) => x.index)).toEqual([1, 2, 3]);
    expect(f.nodes[1]!.identityPublicKey).toBe('ab');
    const c = loadCluster(p, { timeoutMs: 5000 });
    expect(c.size).toBe(3);
    expect(c.nodes.map((x) => [x.options.index, x.options.url, x.options.apiKey, x.options.timeoutMs])).toEqual([
      [1, 'http://127.0.0.1:7701', 'k1', 5000],
      [2, 'http://127.0.0.1:7702', 'k2', 5000],
      [3, 'http://127.0.0.1:7703', 'k3', 5000],
    ]);
  });

  it('defaults to env TESSERA_CLUSTER', () => {
    const p = file(good);
    const before = process.env.TESSERA_CLUSTER;
    process.env.TESSERA_CLUSTER = p;
    try {
      expect(loadCluster().size).toBe(3);
    } finally {
      if (before === undefined) delete process.env.TESSERA_CLUSTER;
      else process.env.TESSERA_CLUSTER = before;
    }
  });

  it('refuses a missing file, bad JSON and each bad field with one clear error', () => {
    const err = (p: string, code: string, message: RegExp) => expect(() => readClusterFile(p)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
    err(join(dir, 'none.json'), 'NOT_FOUND', /none\.json not found/);
    err(file('{ not json'), 'BAD_INPUT', /is not valid JSON/);
    err(file([]), 'BAD_INPUT', /expected a JSON object/);
    err(file({ ...good, coordinator: 5 }), 'BAD_INPUT', /coordinator: expected a URL/);
    err(file({ ...good, nodes: [good.nodes[0]] }), 'BAD_INPUT', /nodes: expected an array of at least 2 nodes/);
    err(file({ ...good, nodes: [{ ...good.nodes[0], url: 'nope' }, ...good.nodes.slice(1)] }), 'BAD_INPUT', /nodes\[0\]\.url: not a URL/);
    err(file({ ...good, nodes: [{ ...good.nodes[0], apiKey: '' }, ...good.nodes.slice(1)] }), 'BAD_INPUT', /nodes\[0\]\.apiKey/);
    err(file({ ...good, nodes: [{ ...good.nodes[0], identityPublicKey: 'xyz' }, ...good.nodes.slice(1)] }), 'BAD_INPUT', /nodes\[0\]\.identityPublicKey: expected hex/);
    err(file({ ...good, nodes: [{ ...good.nodes[0], ca: 'not pem' }, ...good.nodes.slice(1)] }), 'BAD_INPUT', /nodes\[0\]\.ca: expected a PEM/);
    err(file({ ...good, nodes: [good.nodes[0], good.nodes[0], good.nodes[2]] }), 'BAD_INPUT', /numbered 1\.\.3 once each, got 2,2,3/);
    err(file({ ...good, threshold: 4 }), 'BAD_INPUT', /threshold: expected a whole number from 1 to 3/);
    expect(() => loadCluster(file(good), { timeoutMs: -1 })).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('timeoutMs') }));
  });
});
