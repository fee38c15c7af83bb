import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'guardian-validate-'));
  await writeFile(
    join(dir, 'good.yaml'),
    `notify: { slack: { webhook_url: \${HOOK} } }\nrules:\n  - { id: a, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }\n`,
  );
  await writeFile(join(dir, 'bad.yaml'), `rules:\n  - { id: a, flags: [Bad], source: builtin, action: disable, condition: { relative: { max_increase: 0, alpha: 0.7 } } }\n  - { id: a, flags: [ok_flag], source: builtin, action: explode, condition: { absolute: {} } }\n`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env });
  return { code, stdout, stderr };
}

describe('guardian validate', () => {
  it('exit 0 on a valid file, listing its rules', async () => {
    const r = await cli(['validate', join(dir, 'good.yaml')], { HOOK: 'https://hooks.slack.com/services/T/B/x' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid, 1 rule');
    expect(r.stdout).toContain('a: booking_agent_enabled via builtin, error rate > 0.05 → disable');
  });

  it('exit 1 with every problem listed (text and --json)', async () => {
    const text = await cli(['validate', join(dir, 'bad.yaml')]);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain('invalid, 4 problems');
    expect(text.stderr).toContain('rules[0].condition.relative.alpha: must be between 0 and 0.5 (exclusive), got 0.7');
    expect(text.stderr).toContain('rules[1].id: duplicate rule id "a"');
    const json = await cli(['validate', join(dir, 'bad.yaml'), '--json']);
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.stdout) as { valid: boolean; problems: { path: string }[] };
    expect(parsed.valid).toBe(false);
    expect(parsed.problems.map((p) => p.path).sort()).toEqual(['rules[0].condition.relative.alpha', 'rules[0].flags[0]', 'rules[1].action', 'rules[1].id']);
  });

  it('a missing environment variable is a problem naming it (exit 1)', async () => {
    const r = await cli(['validate', join(dir, 'good.yaml'), '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('environment variable HOOK is not set (line 1)');
  });

  it('exit 2 on bad arguments or an unreadable file', async () => {
    expect((await cli(['validate'])).code).toBe(2);
    expect((await cli(['validate', 'a.yaml', 'b.yaml'])).code).toBe(2);
    expect((await cli(['validate', '--yaml', 'x'])).code).toBe(2);
    const missing = await cli(['validate', join(dir, 'missing.yaml'), '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({ valid: false, error: { code: 'BAD_ARGUMENT' } });
  });

  it('validates the committed rules/guardian.yaml with no environment set', async () => {
    const r = await cli(['validate', new URL('../../rules/guardian.yaml', import.meta.url).pathname, '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { rules: unknown[] }).rules).toHaveLength(3);
  });
});
