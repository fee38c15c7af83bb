/**
 * The packed SDK, as npm would publish it: `npm pack` of sdk/ (its `prepack` builds dist/), made
 * once per content of the SDK's sources and build files and shared by every test file that installs
 * it (the packaging test, the examples). A lock keeps two test workers from building sdk/dist at
 * the same time.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SDK = join(REPO_ROOT, 'sdk');

function files(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

function contentHash(): string {
  const h = createHash('sha256');
  for (const f of [...files(join(SDK, 'src')), ...files(join(SDK, 'scripts')), join(SDK, 'package.json'), join(SDK, 'tsconfig.build.json'), join(REPO_ROOT, 'tsconfig.json')]) {
    h.update(f.slice(SDK.length)).update(readFileSync(f));
  }
  return h.digest('hex').slice(0, 16);
}

async function withLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock older than the deadline was left by a killed worker.
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`sdk-tarball: waited 180 s for ${lock}; remove it if no test is running`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Packs the SDK (or reuses the tarball of the same sources) and returns the tarball's path.
 *
 * @example
 * const tgz = await packSdk();
 */
export async function packSdk(): Promise<string> {
  const dir = join(tmpdir(), `rg-sdk-pack-${contentHash()}`);
  const tgz = join(dir, 'rollback-guardian-sdk.tgz');
  if (existsSync(tgz)) return tgz;
  return withLock(join(tmpdir(), 'rg-sdk-pack.lock'), async () => {
    if (existsSync(tgz)) return tgz;
    const out = await mkdtemp(join(tmpdir(), 'rg-sdk-packing-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', out], { cwd: SDK, maxBuffer: 16 << 20 });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    mkdirSync(dir, { recursive: true });
    renameSync(join(out, filename), tgz);
    rmSync(out, { recursive: true, force: true });
    return tgz;
  });
}

/**
 * A fresh project in a temporary folder with the packed SDK installed from its tarball by npm
 * (offline: the SDK has no dependencies and its peers are optional). Third-party packages the
 * project needs (`links`, e.g. react) are symlinked from the repository's node_modules: the same
 * pinned versions the registry would give, without a network install in every test run.
 *
 * @example
 * const app = await installedApp({ links: ['react'] });
 */
export async function installedApp(opts: { readonly links?: readonly string[]; readonly files?: Readonly<Record<string, string>> } = {}): Promise<{ dir: string; remove(): void }> {
  const tgz = await packSdk();
  const dir = await mkdtemp(join(tmpdir(), 'rg-sdk-app-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'rg-sdk-app', private: true, type: 'module' }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock', tgz], { cwd: dir });
  for (const name of opts.links ?? []) {
    const target = join(dir, 'node_modules', name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(REPO_ROOT, 'node_modules', name), target, 'dir');
  }
  for (const [path, text] of Object.entries(opts.files ?? {})) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
