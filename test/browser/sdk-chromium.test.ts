// The SDK's browser bundle (esbuild, platform browser) evaluated in a real headless Chromium
// against the shared vectors (test/vectors/evaluation.json): buckets, Unleash examples and
// full evaluations must match bit for bit, non-ASCII ids included.
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { evaluationVectors } from '../vectors/index.ts';

let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu'],
  });
});
afterAll(async () => browser?.close());

describe('SDK in headless Chromium', () => {
  test('the browser bundle matches the shared vectors', async () => {
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL('../../sdk/src/index.ts', import.meta.url))],
      bundle: true,
      format: 'iife',
      globalName: 'RollbackGuardian',
      platform: 'browser',
      minify: true,
      write: false,
      logLevel: 'silent',
    });
    const page = await browser.newPage();
    try {
      await page.setContent('<!doctype html><title>sdk</title>');
      await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
      const results = await page.evaluate((vectors) => {
        type Api = {
          bucket(g: string, u: string): number;
          murmur3_32(s: string, seed: number): number;
          evaluate(f: unknown, u: string): { value: boolean; reason: string };
          createServerClient(o: unknown): { isEnabled(f: string, u: string): boolean; evaluate(f: string, u: string): { value: boolean; reason: string } };
        };
        const api = (globalThis as unknown as { RollbackGuardian: Api }).RollbackGuardian;
        const client = api.createServerClient({
          transport: { loadAll: () => new Promise(() => undefined) },
          bootstrap: vectors.evaluations.map((v, i) => ({
            name: `${v.flag.name}_${i}`, enabled: v.flag.enabled, rolloutPercentage: v.flag.rollout_percentage,
            bucketGroup: v.flag.bucket_group ?? v.flag.name, version: 1, guardState: 'watching', rollbackMessage: null, targets: v.flag.targets,
          })),
        });
        return {
          userAgent: navigator.userAgent,
          murmur3: vectors.murmur3.map((v) => api.murmur3_32(v.input, v.seed)),
          buckets: vectors.buckets.map((v) => api.bucket(v.group, v.user_id)),
          unleash: vectors.unleash.map((v) => api.evaluate({ name: 'x', enabled: true, rolloutPercentage: v.percentage, bucketGroup: v.group }, v.user_id).value),
          evaluations: vectors.evaluations.map((v) => api.evaluate({ name: v.flag.name, enabled: v.flag.enabled, rolloutPercentage: v.flag.rollout_percentage, bucketGroup: v.flag.bucket_group, targets: v.flag.targets }, v.user_id)),
          client: vectors.evaluations.map((v, i) => client.evaluate(`${v.flag.name}_${i}`, v.user_id)),
        };
      }, evaluationVectors);
      expect(results.userAgent).toMatch(/HeadlessChrome|Chrome/);
      expect(results.murmur3).toEqual(evaluationVectors.murmur3.map((v) => v.expected));
      expect(results.buckets).toEqual(evaluationVectors.buckets.map((v) => v.expected));
      expect(results.unleash).toEqual(evaluationVectors.unleash.map((v) => v.expected_enabled));
      expect(results.evaluations.map((r) => ({ value: r.value, reason: r.reason }))).toEqual(evaluationVectors.evaluations.map((v) => v.expected));
      expect(results.client.map((r) => ({ value: r.value, reason: r.reason }))).toEqual(evaluationVectors.evaluations.map((v) => v.expected));
      expect(results.buckets.length).toBeGreaterThan(10);
    } finally {
      await page.close();
    }
  });
});
