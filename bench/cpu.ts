/**
 * CPU time per operation of each process taking part in a measured run: the coordinator, every node,
 * the bench process itself (the SDK and the load driver) and any other child (the single-key server).
 *
 * Child processes: utime + stime from /proc/<pid>/stat (Linux; proc(5) fields 14 and 15, in clock
 * ticks of `getconf CLK_TCK`, usually 10 ms). The bench process: process.cpuUsage() (microseconds).
 * Read before and after a run; (after - before) / operations. Where /proc is not there (macOS,
 * Windows) a child's figure is undefined and the tables show "-".
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times (sysconf(_SC_CLK_TCK)). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      ticksPerSecond = Number.isInteger(v) && v > 0 ? v : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Total CPU time (user + system) a child process has used so far, in ms; undefined if it cannot be read. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..." — comm may hold spaces or parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is proc(5) field 3 (state), so utime (field 14) is fields[11] and stime (15) fields[12].
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / clockTicks();
}

/** One process to watch: a label for the tables and a way to get its current pid. */
export interface Watched {
  readonly name: string;
  readonly pid: () => number | undefined;
}

/** CPU ms per operation of one process over one run (undefined when it could not be read). */
export interface CpuShare {
  readonly name: string;
  readonly msPerOp: number | undefined;
}

/** Start watching; call the returned function with the number of operations done to get the shares. */
export function cpuProbe(processes: readonly Watched[]): (operations: number) => CpuShare[] {
  const before = processes.map((p) => {
    const pid = p.pid();
    return { pid, ms: processCpuMs(pid) };
  });
  return (operations: number) =>
    processes.map((p, k) => {
      const b = before[k]!;
      const pid = p.pid();
      // A process that restarted in between (another pid) has no meaningful difference.
      const after = pid === b.pid ? processCpuMs(pid) : undefined;
      const ms = after !== undefined && b.ms !== undefined && operations > 0 ? (after - b.ms) / operations : undefined;
      return { name: p.name, msPerOp: ms };
    });
}

/** The bench process itself (SDK + load driver). */
export const benchProcess: Watched = { name: 'bench (SDK)', pid: () => process.pid };

/**
 * Wait until the watched processes (the bench process itself excluded) are near idle: their CPU time
 * grows by less than `idleShare` of one core over a 100 ms window (e.g. a node refilling its
 * presignature pool after a warm-up), or `maxMs` passed. Resolves with the milliseconds waited.
 */
export async function settle(processes: readonly Watched[], maxMs: number, idleShare = 0.2): Promise<number> {
  const others = processes.filter((p) => p.pid() !== process.pid);
  const total = () => others.reduce((s, p) => s + (processCpuMs(p.pid()) ?? 0), 0);
  const t0 = Date.now();
  let last = total();
  while (Date.now() - t0 < maxMs) {
    await new Promise((r) => setTimeout(r, 100));
    const now = total();
    const busy = now - last;
    last = now;
    if (busy < 100 * idleShare) break;
  }
  return Date.now() - t0;
}
