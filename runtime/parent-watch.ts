/**
 * Stop a child process when the process that started it is gone (`tessera dev`, a test runner).
 * `tessera dev` sets TESSERA_PARENT_PID for its children; if that process dies without stopping them
 * (SIGKILL, a crashed test worker), each child notices within a second or two and shuts down cleanly
 * instead of lingering with its ports open.
 */
export function watchParent(stop: () => void, env: NodeJS.ProcessEnv = process.env, intervalMs = 1000): void {
  const pid = Number(env.TESSERA_PARENT_PID);
  if (!Number.isSafeInteger(pid) || pid <= 1) return;
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0); // signal 0: only checks that the process exists
    } catch {
      clearInterval(timer);
      stop();
    }
  }, intervalMs);
  timer.unref();
}
