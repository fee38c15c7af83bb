/**
 * `guardian demo`: the whole loop on a throwaway embedded database — SDK traffic, the builtin
 * source, the cycle, the step back, the event, the alert rows, the SDK's onRollback — caught
 * within two minutes of the bad deploy. The kept database is then readable by `guardian events`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), env });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

describe('guardian demo', () => {
  it('catches the incident within two minutes of the deploy, steps the flag back, records, alerts and tells the app', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'guardian-demo-test-'));
    dirs.push(dir);
    const r = await cli(['demo', '--json', '--data-dir', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      caught: boolean;
      minute: number;
      badDeployMinute: number;
      before: number;
      after: number;
      guardState: string;
      event: { id: string; kind: string; ruleId: string; evidence: { treatment: { total: number; errors: number }; condition: string } };
      alertChannels: string[];
      appHeard: { flag: string; message: string } | null;
    };
    expect(out).toMatchObject({ caught: true, before: 50, after: 10, guardState: 'rolled_back' });
    expect(out.minute - out.badDeployMinute).toBeLessThanOrEqual(2);
    expect(out.event).toMatchObject({ kind: 'auto_rollback', ruleId: 'ai-beta-regression', evidence: { condition: 'relative' } });
    expect(out.event.evidence.treatment.total).toBeGreaterThan(0);
    expect([...out.alertChannels].sort()).toEqual(['email', 'slack']);
    expect(out.appHeard).toMatchObject({ flag: 'ai_beta_users', message: expect.stringContaining('previous version') });

    // The kept database is a normal embedded database: the CLI reads the event.
    const events = await cli(['events', '--json', '--flag', 'ai_beta_users'], { GUARDIAN_DATA_DIR: dir });
    expect(events.code).toBe(0);
    expect(events.stdout).toContain(out.event.id);

    // A second demo on the same folder refuses (the flag is no longer at its seeded 50%).
    const again = await cli(['demo', '--data-dir', dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--data-dir: ai_beta_users .* is not at its seeded 50%/);
  }, 90_000);

  it('prints the story in text on a temporary database, and refuses bad arguments', async () => {
    const r = await cli(['demo', '--users', '300']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('a bad model deploy');
    expect(r.stdout).toMatch(/→ breach/);
    expect(r.stdout).toContain('stepped back 50% → 10%');
    expect(r.stdout).toContain('To restore: guardian restore ai_beta_users');
    expect(r.stdout).toContain('app: onRollback(ai_beta_users)');
    expect((await cli(['demo', '--users', '5'])).code).toBe(2);
    expect((await cli(['demo', '--bogus'])).code).toBe(2);
  }, 90_000);
});
