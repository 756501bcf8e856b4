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
