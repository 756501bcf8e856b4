/** The TesseraError a synchronous call throws (fails the test if it throws anything else, or nothing). */
import { expect } from 'vitest';
import { TesseraError } from '../../core/errors.js';

export function thrown(fn: () => unknown): TesseraError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    return e as TesseraError;
  }
  throw new Error('expected a TesseraError');
}
