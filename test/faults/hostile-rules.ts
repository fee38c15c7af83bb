/**
 * Hostile rules files for the fault suite and the rules tests: each is a YAML text the guardian
 * must refuse with its problem named (`expect` matches a problem), never crash on and never
 * stall on. Generated, so the suite can hold many without a fixture folder of megabytes.
 */

/** One hostile file: its name, its text, the environment it is read with, and what the refusal must say. */
export interface HostileRulesFile {
  readonly name: string;
  readonly text: string;
  readonly env?: Readonly<Record<string, string>>;
  /** A problem (`path: message`) must match this. */
  readonly expect: RegExp;
}

const RULE = `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`;

/** A valid file around `extra` top-level lines and the given rule text. */
function file(extra: string, rule = RULE): string {
  return `${extra}\nrules:\n  - ${rule}\n`;
}

/** `n` rules sharing one anchored flag list (`x-flags: &f [...]`, then `flags: *f`): ordinary DRY YAML, valid. */
export function dryAliasRules(n: number): string {
  const lines = ['x-flags: &f [booking_agent_enabled]', 'rules:'];
  for (let i = 0; i < n; i++) lines.push(`  - { id: r${i}, flags: *f, source: builtin, action: disable, condition: { absolute: {} } }`);
  return `${lines.join('\n')}\n`;
}

/** The classic "billion laughs": `levels` levels of `width` aliases each. */
export function aliasBomb(levels: number, width: number): string {
  const lines = ['a0: &a0 [lol]'];
  for (let l = 1; l <= levels; l++) lines.push(`a${l}: &a${l} [${Array.from({ length: width }, () => `*a${l - 1}`).join(', ')}]`);
  lines.push(`rules: *a${levels}`);
  return `${lines.join('\n')}\n`;
}

function repeatRules(n: number): string {
  const lines = ['rules:'];
  for (let i = 0; i < n; i++) lines.push(`  - { id: rule-${i}, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`);
  return `${lines.join('\n')}\n`;
}

/** Every hostile file of the suite (≥ 70). */
export function hostileRulesFiles(): HostileRulesFile[] {
  const out: HostileRulesFile[] = [];
  const add = (name: string, text: string, expect: RegExp, env?: Record<string, string>) => out.push({ name, text, expect, ...(env ? { env } : {}) });

  // Alias bombs and alias abuse.
  for (const [levels, width] of [[9, 9], [10, 10], [6, 20], [20, 3], [30, 2], [4, 40]] as const) add(`alias bomb ${levels}x${width}`, aliasBomb(levels, width), /aliases|expands to more than|deeper than/);
  add('1,001 alias uses', dryAliasRules(1001), /aliases \(\*name\) more than 1000/);
  add('alias to an unknown anchor', file('', `{ id: r, flags: *nope, source: builtin, action: disable, condition: { absolute: {} } }`), /YAML|alias|anchor/i);
  add('alias to a huge anchored list', `big: &b [${Array.from({ length: 5000 }, (_, i) => `f${i}`).join(', ')}]\nx: [${Array.from({ length: 100 }, () => '*b').join(', ')}]\nrules: []\n`, /expands to more than/);
  add('merge key alias', file('base: &base { source: builtin }', `{ <<: *base, id: r, flags: [booking_agent_enabled], action: disable, condition: { absolute: {} } }`), /unknown key|<</);

  // Nesting.
  for (const depth of [65, 200, 1_000, 10_000, 100_000]) add(`flow nesting ${depth}`, `rules: ${'['.repeat(depth)}${']'.repeat(depth)}\n`, /deeper than|stack|YAML|must be/);
  {
    let deep = 'rules:\n';
    for (let i = 0; i < 100; i++) deep += `${'  '.repeat(i + 1)}a${i}:\n`;
    add('block nesting 100', deep, /deeper than|must be|YAML/);
  }

  // Size.
  add('2 MB of rules', repeatRules(15_000), /above the limit of 1048576 bytes/);
  add('one 10 MB value', file(`interval: "${'9'.repeat(10_000_000)}s"`), /above the limit/);
  add('a 900 kB value', file(`interval: "${'x'.repeat(900_000)}"`), /interval: must be a duration/);
  add('1.1 MB of comments', `${'# filler\n'.repeat(120_000)}${file('')}`, /above the limit/);

  // Duplicate keys.
  add('duplicate top-level key', `rules: []\n${file('')}`, /YAML: Map keys must be unique/);
  add('duplicate key in a rule', file('', `{ id: r, id: s, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /Map keys must be unique/);
  add('duplicate condition', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} }, condition: { relative: { max_increase: 0.1 } } }`), /Map keys must be unique/);
  add('duplicate interval', `interval: 1m\ninterval: 2m\n${file('')}`, /Map keys must be unique/);
  add('duplicate rule id', `rules:\n  - ${RULE}\n  - ${RULE}\n`, /duplicate rule id/);
  add('duplicate flag in a rule', file('', `{ id: r, flags: [booking_agent_enabled, booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /listed twice/);

  // Intervals, windows, blindness.
  for (const v of ['500ms', '999ms', '0s', '30d', '2h', '1h1s', '0ms', '-1s', '1e3s', '10', 'soon', '', '1 m', '1M', '1h 30m']) add(`interval ${JSON.stringify(v)}`, file(`interval: "${v}"`), /interval: must be/);
  for (const v of ['1ms', '59s', '8d', '30d', 'forever']) add(`window ${v}`, file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, window: ${v}, condition: { absolute: {} } }`), /window: must be/);
  add('window below the interval', file('interval: 10m', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, window: 5m, condition: { absolute: {} } }`), /window: must be at least the interval/);
  add('defaults window below the interval', `interval: 1h\ndefaults: { window: 30m }\n${file('')}`, /rules\[0\]\.window: must be at least the interval/);
  add('blindness_after below the interval', file('interval: 10m\nblindness_after: 1m'), /blindness_after: must be at least the interval/);
  add('blindness_after 30d', file('blindness_after: 30d'), /blindness_after: must be between/);

  // Secrets in URLs and elsewhere.
  const secretEnv = { GUARDIAN_INGEST_KEY: 'ik_live_abcdef', DATABASE_URL: 'postgres://u:p@db/x', SENTRY_AUTH_TOKEN: 'sntrys_x', MY_SECRET: 's', SMTP_PASSWORD: 'pw', SUPABASE_SERVICE_ROLE_KEY: 'eyJ', GUARDIAN_SENTRY_DSN: 'https://k@o.ingest.sentry.io/1' };
  for (const name of Object.keys(secretEnv)) {
    add(`\${${name}} in the Slack webhook URL`, file(`notify: { slack: { webhook_url: "https://hooks.example/x/\${${name}}" } }`), new RegExp(`notify\\.slack\\.webhook_url: \\$\\{${name}\\} looks like a secret`), secretEnv);
  }
  add('secret as the whole webhook URL', file('notify: { slack: { webhook_url: "${DATABASE_URL}" } }'), /looks like a secret/, secretEnv);
  add('secret in the PostHog host', file('sources: { posthog: { host: "https://${SENTRY_AUTH_TOKEN}.example", project_id: 1, api_key: x } }'), /sources\.posthog\.host: .*looks like a secret/, secretEnv);
  add('secret in the Sentry base_url', file('sources: { sentry: { base_url: "https://x.example/?t=${SENTRY_AUTH_TOKEN}", org: o, token: "${SENTRY_AUTH_TOKEN}" } }'), /sources\.sentry\.base_url: .*looks like a secret/, secretEnv);
  add('secret in an email address', file('notify: { email: { to: ["${SMTP_PASSWORD}@example.com"] } }'), /looks like a secret/, secretEnv);
  add('secret with a fallback', file('notify: { slack: { webhook_url: "https://h.example/${API_TOKEN:-x}" } }'), /API_TOKEN\} looks like a secret/);

  // Wrong types and shapes.
  add('rules is a map', 'rules: { a: 1 }\n', /rules: must be a list of rules/);
  add('rules is a string', 'rules: hello\n', /rules: must be a list/);
  add('rules empty', 'rules: []\n', /must list at least one rule/);
  add('empty file', '', /the file is empty/);
  add('only a comment', '# nothing\n', /the file is empty/);
  add('a scalar document', '42\n', /expected object|must be|received/i);
  add('a list document', '- a\n- b\n', /expected object|must be|received/i);
  add('flags is a string', file('', `{ id: r, flags: booking_agent_enabled, source: builtin, action: disable, condition: { absolute: {} } }`), /flags: must be a list/);
  add('threshold as text', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: { error_rate_above: "5%" } } }`), /error_rate_above: must be a number/);
  add('threshold NaN', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: { error_rate_above: .nan } } }`), /error_rate_above/);
  add('threshold infinite', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: { error_rate_above: .inf } } }`), /error_rate_above/);
  add('consecutive huge', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, consecutive: 1e12, condition: { absolute: {} } }`), /consecutive: must/);
  add('min_users negative', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, min_users: -5, condition: { absolute: {} } }`), /min_users: must/);
  add('dry_run as yes', file('dry_run: "yes"'), /dry_run: must be true or false/);
  add('unknown action', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: explode, condition: { absolute: {} } }`), /action: must be one of/);
  add('unknown source', file('', `{ id: r, flags: [booking_agent_enabled], source: datadog, action: disable, condition: { absolute: {} } }`), /source: must be one of/);
  add('both conditions', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {}, relative: { max_increase: 0.1 } } }`), /exactly one/);
  add('unknown top-level key', file('intervall: 1m'), /unknown key "intervall"/);
  add('__proto__ key', file('__proto__: { polluted: true }'), /unknown key "__proto__"|__proto__/);
  add('constructor key in a rule', file('', `{ id: r, constructor: 1, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /unknown key "constructor"/);
  add('stages not increasing', file('', `{ id: r, flags: [booking_agent_enabled], source: builtin, action: step_back, stages: [50, 10], condition: { absolute: {} } }`), /strictly increasing/);
  add('binary tag', file('', `{ id: !!binary aGVsbG8=, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /id: must be a rule id/);
  add('unknown tag', file('', `{ id: !evil r, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /YAML|tag|must be/i);

  // Unicode, control characters, broken YAML.
  add('unicode flag name', file('', `{ id: r, flags: [bооking_agent], source: builtin, action: disable, condition: { absolute: {} } }`), /flags\[0\]: must be a flag name/);
  add('emoji rule id', file('', `{ id: "🔥", flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /id: must be a slug/);
  add('right-to-left override in an id', file('', `{ id: "r\u202Eevil", flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /id: must be a slug/);
  add('NUL byte', file('', `{ id: "r\0", flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /YAML|must be/);
  add('raw control characters', `rules:\n  - { id: r\u0007\u001b[31m, flags: [booking_agent_enabled] }\n`, /YAML|must be|required/);
  add('BOM and CRLF but invalid', `\uFEFFrules:\r\n  - { id: R, flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }\r\n`, /id: must be a slug/);
  add('lone surrogate', file('', `{ id: "\uD800", flags: [booking_agent_enabled], source: builtin, action: disable, condition: { absolute: {} } }`), /id: must be a slug|YAML/);
  add('tab indentation', 'rules:\n\t- { id: r }\n', /YAML/);
  add('unclosed flow map', 'rules: [ { id: r\n', /YAML/);
  add('unclosed quote', 'rules: "abc\n', /YAML/);
  add('two documents', `${file('')}---\n${file('')}`, /YAML/);
  add('bad environment reference', file('notify: { slack: { webhook_url: "${1BAD}" } }'), /bad environment reference/);
  add('missing environment variable', file('notify: { slack: { webhook_url: "${NOT_SET_ANYWHERE}" } }'), /NOT_SET_ANYWHERE is not set/);
  add('environment value that is not a URL', file('notify: { slack: { webhook_url: "${HOOK}" } }'), /webhook_url: must be an http\(s\) URL/, { HOOK: `javascript:${'a'.repeat(5000)}` });
  add('javascript: webhook', file('notify: { slack: { webhook_url: "javascript:alert(1)" } }'), /webhook_url: must be an http\(s\) URL/);
  add('file: webhook', file('notify: { slack: { webhook_url: "file:///etc/passwd" } }'), /webhook_url: must be an http\(s\) URL/);
  return out;
}
