/**
 * Progress lines on stderr for commands that may run longer than a second (issue 11, item 4):
 * shown only when stderr is a terminal, so `--json` output, pipes and tests see nothing. One
 * mechanism for the CLI's commands and `tessera dev` start-up.
 */
export interface Progress {
  /** Replace the current line with a new step. */
  step(message: string): void;
  /** Finish: clear the line (or leave `message` on it). */
  done(message?: string): void;
}

export function startProgress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { step: () => undefined, done: () => undefined };
  const started = Date.now();
  let current = label;
  let shown = false;
  const draw = () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    stream.write(`\r\x1b[2K${current} (${seconds}s)`);
    shown = true;
  };
  // The first draw is after one second: a fast command prints no progress at all.
  const timer = setInterval(draw, 1000);
  timer.unref();
  return {
    step(message: string) {
      current = `${label}: ${message}`;
      if (shown) draw();
    },
    done(message?: string) {
      clearInterval(timer);
      if (shown) stream.write(`\r\x1b[2K${message ? message + '\n' : ''}`);
      else if (message) stream.write(message + '\n');
    },
  };
}
