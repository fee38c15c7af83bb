import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../src/rules/duration.ts';
import { rulesJsonSchemaText } from '../src/rules/json-schema.ts';
import { loadRulesFile, loadRulesFileOrThrow, parseRules, type ParseRulesResult } from '../src/rules/parse.ts';
import { isGuardianError } from '../src/errors.ts';

const root = new URL('../../', import.meta.url);

function problems(result: ParseRulesResult): string[] {
  if (result.ok) throw new Error('expected the rules to be refused');
  return result.problems.map((p) => `${p.path}: ${p.message}`);
}
function ok(result: ParseRulesResult) {
  if (!result.ok) throw new Error(`expected valid rules, got:\n${result.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return result;
}

const DESIGN_EXAMPLE = `
defaults: { window: 10m, min_users: 200, consecutive: 2, dry_run: false }
notify:
  slack: { webhook_url: \${SLACK_WEBHOOK_URL} }
  email: { to: [oncall@example.com] }
rules:
  - id: booking-agent-errors
    flags: [booking_agent_enabled]
    source: sentry
    condition: { absolute: { error_rate_above: 0.05 } }
    action: disable
  - id: ai-stage-regression
    flags: [ai_alpha_users, ai_beta_users]
    source: posthog
    condition: { relative: { max_increase: 0.01, alpha: 0.05 } }
    action: step_back
`;

describe('durations', () => {
  it('parses 30s, 10m, 1h, 24h and combinations to ms', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    for (const bad of ['', '10', 'ten minutes', '1.5h', '-1m', '10 m', '1w']) expect(parseDuration(bad)).toBeUndefined();
    expect(formatDuration(5_400_000)).toBe('1h30m');
  });
});

describe('parseRules', () => {
  it('accepts the DESIGN example, merges defaults and resolves durations and conditions', () => {
    const { rules } = ok(parseRules(DESIGN_EXAMPLE, { SLACK_WEBHOOK_URL: 'https://hooks.slack.com/services/T0/B0/x' }));
    expect(rules.notify.slack?.webhook_url).toBe('https://hooks.slack.com/services/T0/B0/x');
    expect(rules.interval).toBe(30_000); // the default: 30 s polls with a 20 s confirmation (bench/rollback-time.bench.ts)
    expect(rules.confirm_after).toBe(20_000);
    expect(rules.blindness_after).toBe(600_000);
    const [a, b] = rules.rules;
    expect(a).toMatchObject({ id: 'booking-agent-errors', window: 600_000, min_users: 200, min_samples: 500, consecutive: 2, dry_run: false });
    expect(a?.condition).toEqual({ kind: 'absolute', error_rate_above: 0.05, confidence: 0.95 });
    expect(a?.stages).toBeUndefined();
    expect(b?.condition).toEqual({ kind: 'relative', max_increase: 0.01, alpha: 0.05 });
    expect(b?.stages).toEqual([10, 50, 100]);
  });

  it('lists every problem at once, each with its path and a hint', () => {
    const text = `
defaults: { window: ten }
rules:
  - id: Bad_Id
    flags: [booking_agent_enabled, booking_agent_enabled, "Nope"]
    source: datadog
    condition: { relative: { max_increase: 0.01, alpha: 0.7 } }
    action: disable
    colour: red
  - id: second
    flags: []
    condition: { absolute: { error_rate_above: 1.5 }, relative: { max_increase: 0 } }
  - id: second
    flags: [session_agent_enabled]
    source: sentry
    condition: {}
    action: disable
    stages: [10, 50]
`;
    const list = problems(parseRules(text));
    expect(list).toEqual(
      expect.arrayContaining([
        'defaults.window: must be a duration like 30s, 10m, 1h or 24h, got "ten"',
        expect.stringMatching(/^rules\[0\]\.id: must be a slug/),
        expect.stringMatching(/^rules\[0\]\.flags\[2\]: must be a flag name.*got "Nope"/),
        'rules[0].flags[1]: flag "booking_agent_enabled" is listed twice in this rule: remove the duplicate',
        'rules[0].source: must be one of posthog, sentry, builtin, got "datadog"',
        'rules[0].condition.relative.alpha: must be between 0 and 0.5 (exclusive), got 0.7',
        'rules[0].colour: unknown key "colour": remove it or fix its spelling',
        'rules[1].flags: must name at least one flag, like [booking_agent_enabled]',
        'rules[1].condition.absolute.error_rate_above: must be between 0 and 1 (exclusive), got 1.5',
        'rules[1].condition: must have exactly one of "absolute" or "relative"',
        'rules[1].source: is required: set it on the rule or in defaults',
        'rules[1].action: is required: set it on the rule or in defaults',
        'rules[2].id: duplicate rule id "second" (also rules[1].id): rule ids must be unique',
        'rules[2].condition: must have exactly one of "absolute" or "relative"',
        expect.stringMatching(/^rules\[2\]\.stages: only applies to action step_back/),
      ]),
    );
  });

  it('refuses unknown keys at every level', () => {
    const list = problems(parseRules(`
surprise: 1
notify: { slack: { webhook_url: "", channel: x } }
sources: { sentry: { org: acme, token: t, projects: [1] } }
rules:
  - { id: a, flags: [booking_agent_enabled], source: sentry, action: disable, condition: { absolute: { threshold: 0.1 } } }
`));
    expect(list).toEqual(
      expect.arrayContaining([
        'surprise: unknown key "surprise": remove it or fix its spelling',
        'notify.slack.channel: unknown key "channel": remove it or fix its spelling',
        'sources.sentry.projects: unknown key "projects": remove it or fix its spelling',
        'rules[0].condition.absolute.threshold: unknown key "threshold": remove it or fix its spelling',
      ]),
    );
  });

  it('names a missing environment variable with its path and line; ${VAR:-} allows empty', () => {
    const text = `sources:\n  posthog:\n    project_id: "1"\n    api_key: \${POSTHOG_API_KEY}\nrules:\n  - { id: a, flags: [ai_beta_users], source: posthog, action: disable, condition: { absolute: {} } }\n`;
    expect(problems(parseRules(text, {}))).toEqual([
      'sources.posthog.api_key: environment variable POSTHOG_API_KEY is not set (line 4): set it, or write ${POSTHOG_API_KEY:-} to allow it to be empty',
    ]);
    expect(ok(parseRules(text, { POSTHOG_API_KEY: 'phx_secret' })).rules.sources.posthog?.api_key).toBe('phx_secret');
    const lenient = ok(parseRules(text.replace('${POSTHOG_API_KEY}', '${POSTHOG_API_KEY:-}'), {}));
    expect(lenient.rules.sources.posthog?.api_key).toBe('');
    expect(lenient.notes.map((n) => n.path)).toContain('sources.posthog');
    expect(ok(parseRules(text.replace('${POSTHOG_API_KEY}', '"${POSTHOG_API_KEY:-fallback}"'), {})).rules.sources.posthog?.api_key).toBe('fallback');
  });

  it('substitutes values into scalars only: a value can never change the YAML structure', () => {
    const text = `sources: { posthog: { project_id: "1", api_key: \${KEY} } }\nrules:\n  - { id: a, flags: [ai_beta_users], source: posthog, action: disable, condition: { absolute: {} } }\n`;
    const hostile = "x', evil: 1 }\nrules: []\n#";
    const { rules } = ok(parseRules(text, { KEY: hostile }));
    expect(rules.sources.posthog?.api_key).toBe(hostile);
    expect(rules.rules.map((r) => r.id)).toEqual(['a']);
  });

  it('writes $${ as a literal ${', () => {
    const r = parseRules(`notify: { email: { to: ["a@example.com"] } }\nrules:\n  - { id: a, flags: [ai_beta_users], source: builtin, action: disable, condition: { absolute: {} }, window: "$\${X}" }\n`);
    expect(problems(r)).toEqual(['rules[0].window: must be a duration like 30s, 10m, 1h or 24h, got "${X}"']);
  });

  it('reports YAML syntax errors with their line, and an empty file', () => {
    expect(problems(parseRules('rules: [\n  - a: b\n'))[0]).toMatch(/^line \d+, column \d+: YAML: /);
    expect(problems(parseRules(''))).toEqual(['(file): the file is empty: it needs at least a "rules:" list']);
    expect(problems(parseRules('rules: []'))).toEqual(['rules: must list at least one rule']);
  });

  it('checks thresholds, alpha, counts and stages', () => {
    const rule = (extra: string) => `rules:\n  - { id: a, flags: [ai_beta_users], source: posthog, action: step_back, ${extra} }\n`;
    expect(problems(parseRules(rule('condition: { absolute: { error_rate_above: 0 } }')))).toEqual(['rules[0].condition.absolute.error_rate_above: must be between 0 and 1 (exclusive), got 0']);
    expect(problems(parseRules(rule('condition: { relative: { max_increase: 0.01, alpha: 0.5 } }')))).toEqual(['rules[0].condition.relative.alpha: must be between 0 and 0.5 (exclusive), got 0.5']);
    expect(problems(parseRules(rule('condition: { relative: { alpha: 0.1 } }')))).toEqual(['rules[0].condition.relative.max_increase: is required (a number)']);
    expect(problems(parseRules(rule('condition: { absolute: {} }, min_users: -3, consecutive: 1.5')))).toEqual([
      'rules[0].min_users: must be a whole number ≥ 1 (flag-on users), got -3',
      'rules[0].consecutive: must be a whole number ≥ 1 (polls in a row), got 1.5',
    ]);
    expect(problems(parseRules(rule('condition: { absolute: {} }, stages: [50, 10]')))).toEqual(['rules[0].stages: must be strictly increasing, like [10, 50, 100]']);
    expect(ok(parseRules(rule('condition: { absolute: {} }, stages: [5, 25, 100]'))).rules.rules[0]?.stages).toEqual([5, 25, 100]);
  });

  it('a relative rule that sets only max_increase gets alpha 0.02 and consecutive 2 (the configuration bench/detection.bench.ts measures)', () => {
    const r = ok(parseRules('rules:\n  - { id: a, flags: [ai_beta_users], source: posthog, action: step_back, condition: { relative: { max_increase: 0 } } }\n')).rules.rules[0];
    expect(r?.condition).toEqual({ kind: 'relative', max_increase: 0, alpha: 0.02 });
    expect(r?.consecutive).toBe(2);
  });

  it('rollback_message and urgent: on a rule or in defaults (the rule wins); plain text within the flag message limits; urgent a boolean', () => {
    const file = (defaults: string, extra: string) =>
      `defaults: { source: builtin, action: disable, condition: { absolute: {} }${defaults} }\nrules:\n  - { id: a, flags: [booking_agent_enabled]${extra} }\n  - { id: b, flags: [session_agent_enabled] }\n`;
    const [a, b] = ok(parseRules(file(', rollback_message: "Back to the classic flow.", urgent: true', ', rollback_message: "Bookings paused.", urgent: false'))).rules.rules;
    expect(a).toMatchObject({ rollback_message: 'Bookings paused.', urgent: false });
    expect(b).toMatchObject({ rollback_message: 'Back to the classic flow.', urgent: true });
    const plain = ok(parseRules(file('', ''))).rules.rules[0];
    expect(plain?.rollback_message).toBeUndefined();
    expect(plain?.urgent).toBeUndefined();

    expect(problems(parseRules(file('', ', rollback_message: "Paused\\u001b[2J now", urgent: "yes"')))).toEqual([
      'rules[0].rollback_message: message contains the control character U+001B at position 7; use plain text',
      'rules[0].urgent: must be true or false, got "yes"',
    ]);
    expect(problems(parseRules(file(`, rollback_message: "${'x'.repeat(501)}"`, '')))).toEqual(['defaults.rollback_message: message longer than 500 characters (got 501)']);
    expect(problems(parseRules(file('', ', rollback_message: "  "')))).toEqual(['rules[0].rollback_message: is blank: write the text users should see, or leave rollback_message out']);
    expect(problems(parseRules(file('', ', rollback_message: 42')))).toEqual(['rules[0].rollback_message: must be text (the message users see after this rule rolls a flag back), got 42']);
    const noted = ok(parseRules(file(', rollback_message: "Back soon.", urgent: true', ', action: notify_only')));
    expect(noted.notes).toContainEqual({ path: 'rules[0]', message: 'rollback_message and urgent have no effect with action notify_only (the flag is not changed)' });
    expect(noted.notes.filter((n) => n.path === 'rules[1]')).toEqual([]);
    // The generated JSON Schema names both fields for editors.
    const schema = JSON.parse(rulesJsonSchemaText()) as { $defs?: unknown };
    expect(JSON.stringify(schema)).toContain('"rollback_message"');
    expect(JSON.stringify(schema)).toContain('"urgent"');
  });

  it('loadRulesFile reports an unreadable file; the throwing variant carries every problem', async () => {
    expect(problems(await loadRulesFile('/nonexistent/rules.yaml'))).toEqual(['(file): cannot read /nonexistent/rules.yaml (ENOENT): check the path and its permissions']);
    const err = await loadRulesFileOrThrow('/nonexistent/rules.yaml').catch((e: unknown) => e);
    expect(isGuardianError(err, 'RULES_INVALID')).toBe(true);
    expect((err as { details: { problems: unknown[] } }).details.problems).toHaveLength(1);
  });
});

describe('committed files', () => {
  it('rules/guardian.yaml is valid with no environment set, covers the seven core flags and reports unconfigured sources', async () => {
    const result = ok(await loadRulesFile(new URL('rules/guardian.yaml', root).pathname, {}));
    const flags = new Set(result.rules.rules.flatMap((r) => r.flags));
    for (const f of ['ai_alpha_users', 'ai_beta_users', 'ai_ga_enabled', 'booking_agent_enabled', 'session_agent_enabled', 'insights_agent_enabled', 'followup_agent_enabled']) {
      expect(flags.has(f)).toBe(true);
    }
    expect(result.notes.map((n) => n.path)).toEqual(expect.arrayContaining(['sources.posthog', 'sources.sentry']));
  });

  it('rules/schema.json is up to date with the zod schema (run: npx node scripts/gen-schema.ts)', async () => {
    const committed = await readFile(new URL('rules/schema.json', root), 'utf8');
    expect(committed).toBe(rulesJsonSchemaText());
    const schema = JSON.parse(committed) as { additionalProperties: boolean; required: string[] };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toContain('rules');
  });
});
