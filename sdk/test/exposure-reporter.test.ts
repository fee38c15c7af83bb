// Option validation of the exposure reporter (`@rollback-guardian/sdk/server`). Its behaviour
// against the guardian's real endpoint is tested in guardian/test/exposure-reporter.db.test.ts.
import { describe, expect, test } from 'vitest';

import { SdkError } from '../src/client/errors.ts';
import { createExposureReporter, type ExposureReporterOptions } from '../src/server/index.ts';

const idle = { setTimeout: () => 0, clearTimeout: () => undefined };
const base: ExposureReporterOptions = { url: 'http://guardian:8787', ingestKey: 'k'.repeat(32), timers: idle };

function refusal(options: unknown): SdkError {
  try {
    createExposureReporter(options as ExposureReporterOptions);
  } catch (err) {
    if (err instanceof SdkError) return err;
    throw err;
  }
  throw new Error('expected INVALID_OPTION');
}

describe('createExposureReporter options', () => {
  test.each([
    [{ ...base, url: 'guardian:8787' }, /url must be the guardian's http\(s\) base URL/],
    [{ ...base, url: 'ftp://guardian' }, /url must be/],
    [{ ...base, ingestKey: 'short' }, /ingestKey must be the guardian's GUARDIAN_INGEST_KEY \(a string of at least 16 characters\)/],
    [{ ...base, fetch: 'nope' }, /fetch must be a fetch function/],
    [{ ...base, timers: {} }, /timers must be an object with setTimeout and clearTimeout/],
    [{ ...base, flushIntervalMs: -1 }, /flushIntervalMs must be a number of milliseconds ≥ 10; got -1/],
    [{ ...base, maxBatch: 1001 }, /maxBatch must be a whole number from 1 to 1000; got 1001/],
    [{ ...base, maxBatch: 1.5 }, /maxBatch must be a whole number/],
    [{ ...base, maxBatch: 100, maxBuffer: 50 }, /maxBuffer must be a whole number from 100 to/],
    [{ ...base, logger: { warn: () => {} } }, /logger must be an object with warn and error methods/],
    [null, /options must be an object/],
  ])('refuses %o', (options, message) => {
    const err = refusal(options);
    expect(err.code).toBe('INVALID_OPTION');
    expect(err.message).toMatch(message);
  });

  test('the ingest key never appears in an error message', () => {
    const err = refusal({ ...base, ingestKey: 'tooshortsecret' });
    expect(err.message).not.toContain('tooshortsecret');
  });

  test('accepts good options, and record/error never throw on bad input', async () => {
    const r = createExposureReporter({ ...base, url: 'http://guardian:8787/', flushIntervalMs: 50, maxBatch: 10, maxBuffer: 20 });
    expect(() => {
      r.record(undefined as unknown as string, null as unknown as string, 'x' as unknown as boolean);
      r.record('ok_flag', 'u'.repeat(600), true);
      r.error(42 as unknown as string);
    }).not.toThrow();
    expect(r.pending).toBe(0);
    expect(() => r.attach({} as never)).toThrow(/attach\(client\): client must be a flag client/);
    await r.close();
  });
});
