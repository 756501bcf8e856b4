/**
 * Internal helpers of the SDK's batch operations (not re-exported by sdk/index.ts).
 */

/** `items` in groups of equal `keyOf`, groups in order of first appearance, items in their order. */
export function groupedBy<T>(items: readonly T[], keyOf: (item: T) => string): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return [...groups.values()];
}

/**
 * Run `each` over every item of every group, up to `concurrency` groups at once and the items of one
 * group one after another (reshareAll and rotateAll: a node stages one change per key, so two changes
 * of one key started together would refuse each other). Resolves when every item is done; `each`
 * reports its own failures (a rejection stops the worker that ran it and rejects the whole run).
 */
export async function forEachGroup<T>(groups: readonly (readonly T[])[], concurrency: number, each: (item: T) => Promise<void>): Promise<void> {
  const queue = [...groups];
  await Promise.all(
    Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
      for (let group = queue.shift(); group !== undefined; group = queue.shift()) for (const item of group) await each(item);
    }),
  );
}
