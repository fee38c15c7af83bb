/** What a promise rejected with, for tests that assert on the error's code or message. */
import { isGuardianError } from '../src/errors.ts';

/**
 * The GuardianError code a promise rejects with (`'resolved'` when it does not reject).
 *
 * @example
 * expect(await codeOf(store.setFlag('f', { rolloutPercentage: 101 }, 'alice'))).toBe('BAD_ARGUMENT');
 */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return isGuardianError(err) ? err.code : `other: ${String(err)}`;
  }
}

/**
 * The error a promise rejects with; fails when it resolves.
 *
 * @example
 * expect((await errorOf(store.restore(req))).message).toMatch(/no flag/);
 */
export async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}
