/**
 * sdk/progress.ts (issue 11, item 4): progress on stderr only when it is a terminal, nothing in the
 * first second (a fast command prints none), then the step and the elapsed seconds on one line,
 * cleared when done; on a pipe or file (tests, --json users, logs) nothing at all.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startProgress } from '../../sdk/progress.js';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: () => string } {
  let out = '';
  const stream = { isTTY, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, written: () => out };
}

describe('startProgress', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('on a terminal: silent for the first second, then the label, the current step and the seconds; done clears the line', () => {
    const { stream, written } = fakeStream(true);
    const p = startProgress('keygen demo', stream);
    p.step('waiting for node 2');
    vi.advanceTimersByTime(900);
    expect(written()).toBe('');
    vi.advanceTimersByTime(200);
    expect(written()).toContain('keygen demo: waiting for node 2 (1s)');
    vi.advanceTimersByTime(2000);
    expect(written()).toContain('(3s)');
    p.done();
    expect(written().endsWith('\r\x1b[2K')).toBe(true);
    const before = written();
    vi.advanceTimersByTime(5000);
    expect(written()).toBe(before); // stopped
  });

  it('a command that ends within the first second prints nothing (or only its final message)', () => {
    const { stream, written } = fakeStream(true);
    const p = startProgress('rotate', stream);
    vi.advanceTimersByTime(500);
    p.done();
    vi.advanceTimersByTime(3000);
    expect(written()).toBe('');
    const q = fakeStream(true);
    startProgress('rotate', q.stream).done('rotated');
    expect(q.written()).toBe('rotated\n');
  });

  it('not a terminal: nothing at all, whatever happens', () => {
    const { stream, written } = fakeStream(false);
    const p = startProgress('export', stream);
    p.step('one');
    vi.advanceTimersByTime(5000);
    p.done('finished');
    expect(written()).toBe('');
  });
});
