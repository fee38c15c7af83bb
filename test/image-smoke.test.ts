/**
 * The Dockerfile cannot be built here (no Docker engine), so this runs what the image runs:
 * scripts/image-smoke.sh lays out /app as the Dockerfile's COPY lines do, installs production
 * dependencies with the same `npm ci --omit=dev`, starts the image's CMD on the embedded
 * database, runs its HEALTHCHECK command and stops it with SIGTERM (exit 0 expected).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('../', import.meta.url).pathname;

describe('the guardian image', () => {
  it('Dockerfile: multi-stage, non-root, HEALTHCHECK on /healthz, the same command as npm start', () => {
    const docker = readFileSync(`${root}Dockerfile`, 'utf8');
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> };
    expect(docker.match(/^FROM /gm)).toHaveLength(4); // deps, sdk-build (sdk/dist), dashboard build, runtime
    expect(docker).toMatch(/^USER node$/m);
    expect(docker).toMatch(/^HEALTHCHECK .*\n.*\/healthz/m);
    const cmd = /^CMD (\[.*\])$/m.exec(docker)?.[1];
    // npm's script `exec`s node (so signals reach it); the image runs node itself, never npm, as PID 1.
    expect(`exec ${(JSON.parse(cmd ?? '[]') as string[]).join(' ')}`).toBe(pkg.scripts['start']);
    expect(docker).not.toMatch(/^(CMD|ENTRYPOINT) .*npm/m);
  });

  it('what the image runs: production dependencies only, HEALTHCHECK passes, SIGTERM exits 0, the bundled CLI answers', async () => {
    const { stdout } = await run('bash', [`${root}scripts/image-smoke.sh`], { cwd: root, timeout: 170_000 });
    expect(stdout).toContain('image-smoke: OK');
    expect(stdout).toContain('Rollback Guardian');
    expect(stdout).toMatch(/image-smoke: guardian \S+ \(node \S+, bundled CLI\); validate OK/);
  }, 180_000);
});
