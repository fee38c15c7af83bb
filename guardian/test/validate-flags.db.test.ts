/**
 * `guardian validate` warns about rules naming flags that do not exist when a database is
 * reachable (issue 10, item 8), and says the check was skipped when it is not.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { main } from '../src/cli/main.ts';
import { UNREACHABLE_URL } from './cli-helpers.ts';

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'guardian-validate-flags-'));
  await writeFile(
    join(dir, 'rules.yaml'),
    `rules:\n  - { id: a, flags: [booking_agent_enabled, no_such_flag], source: builtin, action: disable, condition: { absolute: {} } }\n`,
  );
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string>) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env });
  return { code, stdout, stderr };
}

describe('guardian validate against the database', () => {
  it('warns about a rule naming a flag that does not exist (exit 0: a note, not a problem)', async () => {
    const r = await cli(['validate', join(dir, 'rules.yaml')], { DATABASE_URL: db.url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('note: rules[0].flags[1]: flag "no_such_flag" does not exist in the database');
    expect(r.stdout).not.toContain('"booking_agent_enabled" does not exist');
  });

  it('says the check was skipped when the database is unreachable', async () => {
    const r = await cli(['validate', join(dir, 'rules.yaml'), '--json'], { DATABASE_URL: UNREACHABLE_URL });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('s3cret-pw');
    const out = JSON.parse(r.stdout) as { notes: { path: string; message: string }[] };
    expect(out.notes).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'flags', message: expect.stringMatching(/^not checked against the database/) })]));
  });
});
