import { build } from 'esbuild';
import type { Metafile } from 'esbuild';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  exports: Record<string, { types?: string; default: string } | string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
};
const NODE_BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const PEERS = Object.keys(pkg.peerDependencies ?? {});

async function bundle(entry: string, platform: 'browser' | 'neutral', external: string[] = []): Promise<{ code: string; metafile: Metafile }> {
  const result = await build({
    entryPoints: [`${root}/${entry}`],
    bundle: true,
    minify: true,
    format: 'esm',
    platform,
    write: false,
    metafile: true,
    logLevel: 'silent',
    external: external.flatMap((p) => [p, `${p}/*`]),
    // neutral has no main fields by default
    mainFields: platform === 'neutral' ? ['module', 'main'] : undefined,
  });
  return { code: result.outputFiles[0]!.text, metafile: result.metafile };
}

function forbidden(code: string, metafile: Metafile): string[] {
  const problems: string[] = [];
  for (const out of Object.values(metafile.outputs)) {
    for (const imp of out.imports) if (NODE_BUILTINS.has(imp.path)) problems.push(`imports Node built-in ${imp.path}`);
  }
  for (const input of Object.keys(metafile.inputs)) if (input.startsWith('node:')) problems.push(`bundles ${input}`);
  if (/\beval\s*\(/.test(code)) problems.push('uses eval(');
  if (/new\s+Function\s*\(/.test(code)) problems.push('uses new Function(');
  if (/\brequire\s*\(/.test(code)) problems.push('calls require(');
  return problems;
}

describe('packaging', () => {
  test('the core has no dependencies at all; adapters\' libraries are optional peers', () => {
    expect(pkg.dependencies ?? {}).toEqual({});
    for (const entry of ['.', './supabase', './postgres', './react', './openfeature/server', './openfeature/web', './sentry', './posthog', './edge', './server', './stream']) {
      expect(pkg.exports[entry], entry).toBeDefined();
    }
  });

  for (const platform of ['browser', 'neutral'] as const) {
    test(`core and root entry bundle for platform ${platform} with no Node built-in, eval or new Function`, async () => {
      for (const entry of ['src/core/index.ts', 'src/index.ts']) {
        const { code, metafile } = await bundle(entry, platform);
        expect(forbidden(code, metafile), entry).toEqual([]);
        // The root entry pulls in no third-party module at all.
        expect(Object.keys(metafile.inputs).filter((i) => i.includes('node_modules')), entry).toEqual([]);
      }
    });
  }

  test('browser-facing adapters bundle for the browser without Node built-ins (peers external)', async () => {
    for (const entry of ['src/supabase/index.ts', 'src/react/index.ts', 'src/openfeature/web.ts', 'src/sentry/index.ts', 'src/posthog/index.ts', 'src/edge/index.ts', 'src/stream/index.ts']) {
      const { code, metafile } = await bundle(entry, 'browser', PEERS);
      expect(forbidden(code, metafile), entry).toEqual([]);
    }
  });

  test('the server-only entry (exposure reporter: it holds the ingest key) bundles with no Node built-in, and the root entry never pulls it in', async () => {
    const { code, metafile } = await bundle('src/server/index.ts', 'neutral');
    expect(forbidden(code, metafile)).toEqual([]);
    const root = await bundle('src/index.ts', 'neutral');
    expect(Object.keys(root.metafile.inputs).filter((i) => i.includes('src/server/'))).toEqual([]);
  });

  test('the /react entry pulls no server code into a browser bundle (client types only)', async () => {
    const { metafile } = await bundle('src/react/index.ts', 'browser', PEERS);
    const inputs = Object.keys(metafile.inputs);
    expect(inputs.filter((i) => /src\/(client\/server|core\/compiled|server\/)/.test(i))).toEqual([]);
    expect(inputs.some((i) => i.endsWith('src/react/index.ts'))).toBe(true);
  });

  test('the bundle check itself catches a Node import and eval', async () => {
    const bad = await build({
      stdin: { contents: 'import { createHash } from "node:crypto"; export const f = () => eval("1") + createHash("md5").digest("hex");', loader: 'ts' },
      bundle: true, format: 'esm', platform: 'node', write: false, metafile: true, logLevel: 'silent',
    });
    expect(forbidden(bad.outputFiles[0]!.text, bad.metafile)).toEqual(expect.arrayContaining(['imports Node built-in node:crypto', 'uses eval(']));
  });

  test('size budget: core ≤ 4 KB and the whole root entry (core + clients, rollback hold and jitter included) ≤ 7 KB, min+gzip', async () => {
    const core = gzipSync((await bundle('src/core/index.ts', 'neutral')).code, { level: 9 }).length;
    const all = gzipSync((await bundle('src/index.ts', 'neutral')).code, { level: 9 }).length;
    console.log(`min+gzip: core ${core} B, root entry ${all} B`);
    expect(core).toBeLessThanOrEqual(4096);
    expect(all).toBeLessThanOrEqual(7168);
  });
});
