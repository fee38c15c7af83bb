/**
 * Reads a rules file: YAML → `${VAR}` interpolation → schema check → defaults merged.
 * Every problem is reported at once, each with its path and a hint.
 */
import { open } from 'node:fs/promises';
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { cutText, GuardianError } from '../errors.ts';
import { resolvePlans } from '../plans/resolve.ts';
import { formatDuration } from './duration.ts';
import { BUILTIN_RULE_DEFAULTS, DEFAULT_STAGES, RuleSchema, RulesFileSchema, type Rule, type RulesConfig } from './schema.ts';

/**
 * What a rules file may cost, checked before anything is built from it (README "Rules file
 * limits"): a larger or more expanded file is a listed problem, never a crash or a stall.
 *
 * - `maxBytes`: files above 1 MiB are refused before parsing.
 * - `maxAliases`: at most 1,000 alias uses (`*name`), so ordinary DRY YAML works.
 * - `maxNodes`: at most 200,000 values once every alias is expanded (an alias bomb is refused
 *   while being measured, without expanding it).
 * - `maxDepth`: at most 64 levels of nesting (after expansion).
 */
export const RULES_LIMITS = { maxBytes: 1_048_576, maxAliases: 1_000, maxNodes: 200_000, maxDepth: 64 } as const;

/** Longest problem message: values quoted in it are cut so a huge value is never echoed whole. */
const MESSAGE_MAX = 400;

/**
 * Environment variables that hold secrets (`*_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`,
 * `*_DSN`, `DATABASE_URL`, service-role keys): they may only fill the credential fields
 * ({@link SECRET_FIELDS}), never a URL, an address or anything else that is sent or shown.
 */
export const SECRET_ENV_NAME = /(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|DSN|CREDENTIALS?|PRIVATE_KEY)$|(^|_)DATABASE_URL$|SERVICE_ROLE/;
/** The fields made to hold a secret. */
const SECRET_FIELDS = new Set(['sources.posthog.api_key', 'sources.sentry.token']);

/** One thing wrong with a rules file: where (`rules[1].condition.relative.alpha`) and what, with a fix hint. */
export interface RulesProblem {
  readonly path: string;
  readonly message: string;
}

/** Something worth knowing that does not make the file invalid (for example a source that is not configured). */
export interface RulesNote {
  readonly path: string;
  readonly message: string;
}

/** Result of {@link parseRules}: the resolved rules, or every problem found. */
export type ParseRulesResult =
  | { readonly ok: true; readonly rules: RulesConfig; readonly notes: readonly RulesNote[] }
  | { readonly ok: false; readonly problems: readonly RulesProblem[] };

/** Environment lookup used for `${VAR}` interpolation. */
export type RulesEnv = Readonly<Record<string, string | undefined>>;

const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?/g;
const PLACEHOLDER = /\uE000guardian-env-(\d+)\uE001/g;

interface EnvRef {
  readonly name: string;
  readonly fallback: string | undefined;
  readonly line: number;
}

/** Formats a zod/our path: `['rules', 1, 'condition']` → `rules[1].condition`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(file)' : out;
}

/**
 * Replaces each `${VAR}` / `${VAR:-default}` with an opaque placeholder before YAML parsing
 * (so references work inside flow maps such as `{ webhook_url: ${SLACK_WEBHOOK_URL} }`), and
 * records where each one was. `$${` writes a literal `${`. Values are substituted later into the
 * parsed scalars only, so a value can never change the YAML structure.
 */
function protectReferences(text: string, problems: RulesProblem[]): { text: string; refs: EnvRef[] } {
  const refs: EnvRef[] = [];
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') lineStarts.push(i + 1);
  const lineOf = (offset: number): number => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const out = text.replace(ENV_REF, (match: string, name: string | undefined, fallback: string | undefined, offset: number) => {
    if (match === '$${') return '\uE000guardian-dollar\uE001';
    if (name === undefined) {
      problems.push({ path: `line ${lineOf(offset)}`, message: `bad environment reference ${JSON.stringify(match)}: write \${NAME} or \${NAME:-default} (NAME: letters, digits, _)` });
      return match;
    }
    refs.push({ name, fallback, line: lineOf(offset) });
    return `\uE000guardian-env-${refs.length - 1}\uE001`;
  });
  return { text: out, refs };
}

/**
 * Parses and validates a rules file.
 *
 * - `${VAR}` takes the value from `env` (missing → a problem naming VAR, its path and line);
 *   `${VAR:-fallback}` uses the fallback (possibly empty) when VAR is unset or empty.
 * - `defaults` are merged under each rule's own fields, then built-in defaults
 *   (window 1h, min_users 100, min_samples 500, consecutive 2, dry_run false, stages [10, 50, 100] for step_back).
 * - Never throws: returns `{ ok: false, problems }` with every problem found.
 *
 * @example
 * const result = parseRules(yamlText, process.env);
 * if (!result.ok) for (const p of result.problems) console.error(`${p.path}: ${p.message}`);
 * else console.log(result.rules.rules.map((r) => r.id));
 */
export function parseRules(yamlText: string, env: RulesEnv = {}): ParseRulesResult {
  const bytes = Buffer.byteLength(yamlText, 'utf8');
  if (bytes > RULES_LIMITS.maxBytes) return { ok: false, problems: [tooLarge(bytes)] };
  let result: ParseRulesResult;
  try {
    result = parseRulesText(yamlText, env);
  } catch (err) {
    // Whatever the YAML library or a check throws (a stack overflow, a resource guard) is a problem, never a crash.
    const e = err as { name?: string; message?: string };
    result = { ok: false, problems: [{ path: '(file)', message: `cannot be read as a rules file (${e.name ?? 'Error'}: ${e.message ?? String(err)}): simplify the YAML` }] };
  }
  if (result.ok) return result;
  return { ok: false, problems: result.problems.map((p) => ({ path: cutText(p.path, 200), message: cutText(p.message, MESSAGE_MAX) })) };
}

function tooLarge(bytes: number): RulesProblem {
  return { path: '(file)', message: `is ${bytes} bytes, above the limit of ${RULES_LIMITS.maxBytes} bytes (1 MiB): split it or remove what it repeats` };
}

/**
 * Measures the document as it would be once every alias is expanded (sizes are memoized per
 * node, so a bomb is measured in linear time and never expanded): alias uses, values, depth.
 */
function measureDocument(doc: Document): RulesProblem | undefined {
  const anchors = new Map<string, unknown>();
  const memo = new Map<unknown, { nodes: number; height: number }>();
  const inProgress = new Set<unknown>();
  let aliases = 0;
  let problem: RulesProblem | undefined;
  const fail = (message: string): { nodes: number; height: number } => {
    problem ??= { path: '(file)', message };
    return { nodes: 0, height: 0 };
  };
  const measure = (node: unknown, depth: number): { nodes: number; height: number } => {
    if (problem) return { nodes: 0, height: 0 };
    if (depth > RULES_LIMITS.maxDepth) return fail(`nests deeper than ${RULES_LIMITS.maxDepth} levels: flatten it`);
    if (node === null || node === undefined) return { nodes: 0, height: 0 };
    if (isAlias(node)) {
      aliases += 1;
      if (aliases > RULES_LIMITS.maxAliases) return fail(`uses aliases (*name) more than ${RULES_LIMITS.maxAliases} times: write the values out or use fewer aliases`);
      const target = anchors.get(node.source);
      if (target === undefined) return { nodes: 1, height: 0 }; // the parser reports unknown anchors itself
      if (inProgress.has(target)) return fail(`alias *${node.source} refers to a value that contains it: remove the cycle`);
      const m = memo.get(target) ?? measure(target, depth);
      if (depth + m.height > RULES_LIMITS.maxDepth) return fail(`nests deeper than ${RULES_LIMITS.maxDepth} levels once aliases are expanded: flatten it`);
      return m;
    }
    const anchor = (node as { anchor?: string }).anchor;
    if (anchor) anchors.set(anchor, node);
    let nodes = 1;
    let height = 0;
    const children: unknown[] = [];
    if (isMap(node)) for (const pair of node.items) children.push(pair.key, pair.value);
    else if (isSeq(node)) children.push(...node.items);
    inProgress.add(node);
    for (const child of children) {
      const m = measure(child, depth + 1);
      nodes += m.nodes;
      height = Math.max(height, m.height + 1);
      if (nodes > RULES_LIMITS.maxNodes) {
        inProgress.delete(node);
        return fail(`expands to more than ${RULES_LIMITS.maxNodes} values (aliases included): an alias bomb, or a file to split`);
      }
    }
    inProgress.delete(node);
    const m = { nodes, height };
    memo.set(node, m);
    return m;
  };
  measure(doc.contents, 0);
  return problem;
}

function parseRulesText(yamlText: string, env: RulesEnv): ParseRulesResult {
  const problems: RulesProblem[] = [];
  const { text, refs } = protectReferences(yamlText, problems);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  // Warnings (an unknown tag such as `!evil`) are refused too: the file must mean exactly what it says.
  for (const err of [...doc.errors, ...doc.warnings]) {
    const pos = err.linePos?.[0];
    problems.push({ path: pos ? `line ${pos.line}, column ${pos.col}` : '(file)', message: `YAML: ${err.message.split('\n')[0] ?? err.message}` });
  }
  if (problems.length > 0) return { ok: false, problems };
  const measured = measureDocument(doc);
  if (measured) return { ok: false, problems: [measured] };

  // Substitute environment values into scalars, tracking the YAML path for messages.
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (typeof node.value !== 'string' || key === 'key') return;
      const original = node.value;
      if (!original.includes('\uE000')) return;
      const path = pathOf([...ancestors, node]);
      node.value = original
        .replace(PLACEHOLDER, (_m: string, index: string) => {
          const ref = refs[Number(index)]!;
          if (SECRET_ENV_NAME.test(ref.name) && !SECRET_FIELDS.has(path)) {
            problems.push({
              path,
              message: `\${${ref.name}} looks like a secret (line ${ref.line}) and would be sent or shown here: secrets may only fill ${[...SECRET_FIELDS].join(' or ')}; use a variable made for this field`,
            });
            return '';
          }
          const value = env[ref.name];
          if (value !== undefined && value !== '') return value;
          if (ref.fallback !== undefined) return ref.fallback;
          if (value === '') return '';
          problems.push({
            path,
            message: `environment variable ${ref.name} is not set (line ${ref.line}): set it, or write \${${ref.name}:-} to allow it to be empty`,
          });
          return '';
        })
        .replaceAll('\uE000guardian-dollar\uE001', '${');
    },
  });
  // measureDocument bounded every alias use and the expanded size above.
  const raw = withoutExtensionKeys(doc.toJS({ maxAliasCount: -1 }) as unknown);
  if (raw === null || raw === undefined) return { ok: false, problems: [...problems, { path: '(file)', message: 'the file is empty: it needs at least a "rules:" list' }] };

  const parsed = RulesFileSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) problems.push(...issuesToProblems(parsed.error.issues));
  problems.push(...crossChecks(raw));
  if (problems.length > 0 || !parsed.success) return { ok: false, problems: dedupe(problems) };

  const rawObj = raw as { defaults?: Record<string, unknown>; rules: Record<string, unknown>[] };
  const rules: Rule[] = [];
  rawObj.rules.forEach((rawRule, i) => {
    const merged: Record<string, unknown> = { ...BUILTIN_RULE_DEFAULTS, ...(rawObj.defaults ?? {}), ...rawRule };
    if (merged.action !== 'step_back') delete merged.stages;
    else if (merged.stages === undefined) merged.stages = [...DEFAULT_STAGES];
    const rule = RuleSchema.safeParse(merged, { reportInput: true });
    if (rule.success) rules.push(rule.data);
    else problems.push(...issuesToProblems(rule.error.issues, ['rules', i]));
  });
  if (problems.length > 0) return { ok: false, problems: dedupe(problems) };

  const file = parsed.data;
  problems.push(...timingProblems(file.interval, file.blindness_after, rules));
  const planned = resolvePlans(file.plans ?? [], rules);
  problems.push(...planned.problems);
  if (problems.length > 0) return { ok: false, problems: dedupe(problems) };
  const config: RulesConfig = {
    notify: file.notify ?? {},
    sources: file.sources ?? {},
    interval: file.interval,
    blindness_after: file.blindness_after,
    confirm_after: file.confirm_after,
    dry_run: file.dry_run,
    rules,
    ...(planned.plans.length > 0 ? { plans: planned.plans } : {}),
  };
  return { ok: true, rules: config, notes: [...notesFor(config), ...planned.notes] };
}

/**
 * Reads and parses a rules file from disk. An unreadable file is a problem too (path `(file)`).
 *
 * @example
 * const result = await loadRulesFile('rules/guardian.yaml', process.env);
 */
export async function loadRulesFile(path: string, env: RulesEnv = {}): Promise<ParseRulesResult> {
  let text: string;
  try {
    // The size is checked before the file is read: a huge file is refused without loading it.
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > RULES_LIMITS.maxBytes) return { ok: false, problems: [tooLarge(size)] };
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, problems: [{ path: '(file)', message: `cannot read ${path}${code ? ` (${code})` : ''}: check the path and its permissions` }] };
  }
  return parseRules(text, env);
}

/**
 * Like {@link loadRulesFile} but throws `GuardianError('RULES_INVALID')` with
 * `details.problems` when the file is invalid; for callers that prefer exceptions.
 *
 * @example
 * const { rules } = await loadRulesFileOrThrow('rules/guardian.yaml', process.env);
 */
export async function loadRulesFileOrThrow(path: string, env: RulesEnv = {}): Promise<{ rules: RulesConfig; notes: readonly RulesNote[] }> {
  const result = await loadRulesFile(path, env);
  if (!result.ok) {
    const list = result.problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
    throw new GuardianError('RULES_INVALID', `${path} is invalid (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}):\n${list}`, {
      details: { path, problems: result.problems },
    });
  }
  return { rules: result.rules, notes: result.notes };
}

/**
 * Drops top-level `x-…` keys: a home for anchors shared by several rules (`x-flags: &f [...]`,
 * then `flags: *f`), as in Docker Compose files. Any other unknown key is still a problem.
 */
function withoutExtensionKeys(raw: unknown): unknown {
  if (!isRecord(raw)) return raw;
  return Object.fromEntries(Object.entries(raw).filter(([key]) => !key.startsWith('x-')));
}

/** A rule's window and the blindness delay must be at least one poll interval: a shorter one cannot be observed. */
function timingProblems(interval: number, blindnessAfter: number, rules: readonly Rule[]): RulesProblem[] {
  const out: RulesProblem[] = [];
  if (blindnessAfter < interval) {
    out.push({ path: 'blindness_after', message: `must be at least the interval (${formatDuration(interval)}), got ${formatDuration(blindnessAfter)}: blindness is only seen once per poll` });
  }
  rules.forEach((rule, i) => {
    if (rule.window < interval) {
      out.push({ path: `rules[${i}].window`, message: `must be at least the interval (${formatDuration(interval)}), got ${formatDuration(rule.window)}: a segment shorter than a poll is never observed whole` });
    }
  });
  return out;
}

function pathOf(chain: readonly unknown[]): string {
  const parts: (string | number)[] = [];
  for (let i = 0; i < chain.length - 1; i++) {
    const node = chain[i];
    const next = chain[i + 1];
    if (isSeq(node)) parts.push(node.items.indexOf(next as never));
    else if (isPair(node) && node.value === next) parts.push(isScalar(node.key) ? String(node.key.value) : String(node.key));
    else if (isMap(node)) continue;
  }
  return formatPath(parts);
}

function issuesToProblems(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): RulesProblem[] {
  const out: RulesProblem[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...path, key]), message: `unknown key ${JSON.stringify(key)}: remove it or fix its spelling` });
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      out.push({ path: formatPath(path), message: `is required (${issue.expected === 'array' ? 'a list' : `a ${issue.expected}`})` });
    } else if (issue.code === 'invalid_union' && issue.input === undefined) {
      out.push({ path: formatPath(path), message: 'is required' });
    } else {
      out.push({ path: formatPath(path), message: issue.message });
    }
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks across fields that field-by-field validation cannot see. Defensive: runs on unvalidated input. */
function crossChecks(raw: unknown): RulesProblem[] {
  const out: RulesProblem[] = [];
  if (!isRecord(raw) || !Array.isArray(raw.rules)) return out;
  const defaults = isRecord(raw.defaults) ? raw.defaults : {};
  const seenIds = new Map<string, number>();
  raw.rules.forEach((rule: unknown, i: number) => {
    if (!isRecord(rule)) return;
    if (typeof rule.id === 'string') {
      const first = seenIds.get(rule.id);
      if (first !== undefined) out.push({ path: `rules[${i}].id`, message: `duplicate rule id ${JSON.stringify(rule.id)} (also rules[${first}].id): rule ids must be unique` });
      else seenIds.set(rule.id, i);
    }
    if (Array.isArray(rule.flags)) {
      const seen = new Set<unknown>();
      rule.flags.forEach((flag: unknown, k: number) => {
        if (seen.has(flag)) out.push({ path: `rules[${i}].flags[${k}]`, message: `flag ${JSON.stringify(flag)} is listed twice in this rule: remove the duplicate` });
        seen.add(flag);
      });
    }
    for (const field of ['source', 'condition', 'action'] as const) {
      if (rule[field] === undefined && defaults[field] === undefined) {
        out.push({ path: `rules[${i}].${field}`, message: `is required: set it on the rule or in defaults` });
      }
    }
    const action = rule.action ?? defaults.action;
    if (rule.stages !== undefined && action !== undefined && action !== 'step_back') {
      out.push({ path: `rules[${i}].stages`, message: `only applies to action step_back (this rule's action is ${JSON.stringify(action)}): remove it or use step_back` });
    }
  });
  return out;
}

function dedupe(problems: readonly RulesProblem[]): RulesProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Sources and channels that are referenced but not configured: reported, never fatal. */
function notesFor(config: RulesConfig): RulesNote[] {
  const notes: RulesNote[] = [];
  const used = new Set(config.rules.map((r) => r.source));
  const ph = config.sources.posthog;
  if (used.has('posthog') && (!ph || ph.api_key === '' || ph.project_id === '')) {
    notes.push({ path: 'sources.posthog', message: 'not configured (no project_id or api_key): rules with source posthog will report no data until it is' });
  }
  const se = config.sources.sentry;
  if (used.has('sentry') && (!se || se.token === '' || se.org === '')) {
    notes.push({ path: 'sources.sentry', message: 'not configured (no org or token): rules with source sentry will report no data until it is' });
  }
  if (config.notify.slack && config.notify.slack.webhook_url === '') notes.push({ path: 'notify.slack.webhook_url', message: 'empty: Slack alerts are off' });
  config.rules.forEach((rule, i) => {
    if (rule.action === 'notify_only' && (rule.rollback_message !== undefined || rule.urgent === true)) {
      notes.push({ path: `rules[${i}]`, message: 'rollback_message and urgent have no effect with action notify_only (the flag is not changed)' });
    }
  });
  if (!config.notify.slack && !config.notify.email) notes.push({ path: 'notify', message: 'no notification channel configured: rollbacks are recorded but nobody is told' });
  return notes;
}
