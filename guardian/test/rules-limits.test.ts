/**
 * The rules file never crashes anything (issue 10, items 1 and 8): YAML resource failures are
 * listed problems, aliases expand within RULES_LIMITS, huge files are refused before parsing,
 * long values are cut, durations the daemon cannot run are refused, secrets stay out of URLs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRulesFile, parseRules, RULES_LIMITS, type ParseRulesResult } from '../src/rules/parse.ts';
import { aliasBomb, dryAliasRules } from '../../test/faults/hostile-rules.ts';

function problems(result: ParseRulesResult): string[] {
  if (result.ok) throw new Error('expected the rules to be refused');
  return result.problems.map((p) => `${p.path}: ${p.message}`);
}

const RULE = '{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'guardian-rules-limits-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('rules file limits', () => {
  it('ordinary DRY YAML: one anchor used by 120 rules is valid (was: ReferenceError thrown by toJS)', () => {
    const result = parseRules(dryAliasRules(120));
    if (!result.ok) throw new Error(problems(result).join('\n'));
    expect(result.rules.rules).toHaveLength(120);
    expect(result.rules.rules[119]!.flags).toEqual(['booking_agent_enabled']);
  });

  it('an alias bomb is a listed problem, measured without expanding it', () => {
    const list = problems(parseRules(aliasBomb(9, 9)));
    expect(list.join('\n')).toMatch(/expands to more than 200000 values|aliases \(\*name\) more than 1000/);
  });

  it('more than 1,000 alias uses is a listed problem', () => {
    expect(problems(parseRules(dryAliasRules(RULES_LIMITS.maxAliases + 1))).join('\n')).toMatch(/uses aliases \(\*name\) more than 1000 times/);
  });

  it('deep nesting is a listed problem', () => {
    expect(problems(parseRules(`rules: ${'['.repeat(100)}${']'.repeat(100)}\n`)).join('\n')).toMatch(/nests deeper than 64 levels/);
  });

  it('a file above 1 MiB is refused before it is read', async () => {
    const path = join(dir, 'big.yaml');
    await writeFile(path, `# ${'x'.repeat(RULES_LIMITS.maxBytes)}\nrules:\n  - ${RULE}\n`);
    expect(problems(await loadRulesFile(path)).join('\n')).toMatch(/\(file\): is 1048\d+ bytes, above the limit of 1048576 bytes/);
    expect(problems(parseRules(`# ${'x'.repeat(RULES_LIMITS.maxBytes)}\n`)).join('\n')).toMatch(/above the limit/);
  });

  it('long values are cut in messages', () => {
    const result = problems(parseRules(`interval: "${'9'.repeat(500_000)}x"\nrules:\n  - ${RULE}\n`));
    expect(result.join('\n')).toMatch(/interval: must be a duration/);
    for (const line of result) expect(line.length).toBeLessThan(700);
  });

  it('duplicate keys are listed problems', () => {
    expect(problems(parseRules(`interval: 1m\ninterval: 2m\nrules:\n  - ${RULE}\n`)).join('\n')).toMatch(/Map keys must be unique/);
  });
});

describe('durations the daemon can run', () => {
  it.each([
    ['interval: 500ms', /interval: must be between 1s and 1h, got 500ms/],
    ['interval: 30d', /interval: must be between 1s and 1h, got 30d/],
    ['blindness_after: 30d', /blindness_after: must be between 1s and 7d/],
    ['interval: 10m\nblindness_after: 1m', /blindness_after: must be at least the interval \(10m\), got 1m/],
  ])('%s is refused', (line, expected) => {
    expect(problems(parseRules(`${line}\nrules:\n  - ${RULE}\n`)).join('\n')).toMatch(expected);
  });

  it('window 1ms and a window below the interval are refused', () => {
    expect(problems(parseRules(`rules:\n  - { id: r, flags: [booking_agent_enabled], source: builtin, action: disable, window: 1ms, condition: { absolute: {} } }\n`)).join('\n')).toMatch(
      /rules\[0\]\.window: must be between 1m and 7d, got 1ms/,
    );
    expect(problems(parseRules(`interval: 1h\ndefaults: { window: 10m }\nrules:\n  - ${RULE}\n`)).join('\n')).toMatch(/rules\[0\]\.window: must be at least the interval \(1h\), got 10m/);
  });

  it('a short interval (10 s) with the default window is fine', () => {
    const result = parseRules(`interval: 10s\nrules:\n  - ${RULE}\n`);
    expect(result.ok).toBe(true);
  });
});

describe('secrets in the rules file', () => {
  it('a secret interpolated into a URL is refused, naming the variable (never its value)', () => {
    const env = { GUARDIAN_INGEST_KEY: 'ik_live_supersecret' };
    const list = problems(parseRules(`notify: { slack: { webhook_url: "https://hooks.example/x/\${GUARDIAN_INGEST_KEY}" } }\nrules:\n  - ${RULE}\n`, env));
    expect(list.join('\n')).toMatch(/notify\.slack\.webhook_url: \$\{GUARDIAN_INGEST_KEY\} looks like a secret/);
    expect(list.join('\n')).not.toContain('ik_live_supersecret');
  });

  it.each(['DATABASE_URL', 'SENTRY_AUTH_TOKEN', 'APP_SECRET', 'SMTP_PASSWORD'])('${%s} in a URL is refused', (name) => {
    expect(problems(parseRules(`sources: { posthog: { host: "https://x.example/\${${name}}", project_id: 1, api_key: k } }\nrules:\n  - ${RULE}\n`, { [name]: 'v' })).join('\n')).toMatch(
      /sources\.posthog\.host: .*looks like a secret/,
    );
  });

  it('the credential fields take their secrets', () => {
    const result = parseRules(
      `sources:\n  posthog: { project_id: 1, api_key: "\${POSTHOG_API_KEY}" }\n  sentry: { org: o, token: "\${SENTRY_AUTH_TOKEN}" }\nnotify: { slack: { webhook_url: "\${SLACK_WEBHOOK_URL}" } }\nrules:\n  - ${RULE}\n`,
      { POSTHOG_API_KEY: 'phx', SENTRY_AUTH_TOKEN: 'st', SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/x' },
    );
    expect(result.ok).toBe(true);
  });
});
