/**
 * Turns an outbox row into a channel-neutral {@link NotificationMessage}: the headline, the facts
 * (rule, action, state change, actor, time), the evidence (rates, counts, bound, threshold), the
 * restore command and the dashboard link. Payloads are read tolerantly: a missing field leaves
 * its line out, it never fails a delivery.
 */
import { z } from 'zod';
import { parseFlagHealthKey } from './blindness.ts';
import type { MessageFact, NotificationMessage, OutboxRow } from './types.ts';

const num = z.number().finite();
const text = z.string();

const CohortSchema = z.looseObject({ total: num, errors: num, rate: num.optional() });

const EvidenceSchema = z.looseObject({
  unit: z.enum(['users', 'events']).optional(),
  treatment: CohortSchema.optional(),
  control: CohortSchema.optional(),
  condition: text.optional(),
  threshold: num.optional(),
  max_increase: num.optional(),
  margin: num.optional(),
  alpha: num.optional(),
  statistic: text.optional(),
  lower_bound: num.optional(),
  log_e_value: num.optional(),
  window: num.optional(),
  polls: num.optional(),
  at: text.optional(),
  segments: num.optional(),
  since: text.optional(),
});

const StateSchema = z.looseObject({
  enabled: z.boolean().optional(),
  rollout_percentage: num.optional(),
  guard_state: text.optional(),
  targets: z.array(z.unknown()).optional(),
});

const EventPayloadSchema = z.looseObject({
  event_id: z.union([num, text]).optional(),
  flag: text.optional(),
  kind: text.optional(),
  rule_id: text.nullish(),
  source: text.nullish(),
  action: text.nullish(),
  reason: text.nullish(),
  evidence: z.unknown().optional(),
  previous_state: z.unknown().optional(),
  new_state: z.unknown().optional(),
  actor: text.nullish(),
  restores_event_id: z.union([num, text]).nullish(),
  created_at: text.optional(),
});

const SourcePayloadSchema = z.looseObject({
  source: text.optional(),
  blind_since: text.nullish(),
  last_ok_at: text.nullish(),
  last_error: text.nullish(),
  blind_after_seconds: num.optional(),
  detected_at: text.optional(),
  recovered_at: text.optional(),
  blind_for_seconds: num.optional(),
});

/** Options of {@link messageFromOutbox}. */
export interface MessageOptions {
  /** Base URL of the dashboard (`GUARDIAN_DASHBOARD_URL`); links are left out without it. */
  readonly dashboardUrl?: string;
}

/**
 * Formats a rate (0..1) as a percentage with sensible precision: `0.0912` → `9.12%`.
 *
 * @example
 * formatRate(0.05); // '5%'
 */
export function formatRate(rate: number): string {
  const pct = rate * 100;
  const digits = pct === 0 || Math.abs(pct) >= 10 ? 1 : Math.abs(pct) >= 1 ? 2 : 3;
  return `${Number(pct.toFixed(digits)).toString()}%`;
}

/**
 * Formats a duration in ms for people: `600000` → `10 min`.
 *
 * @example
 * formatDuration(90_000); // '1 min 30 s'
 */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return rest > 0 ? `${m} min ${rest} s` : `${m} min`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function describeState(value: unknown): string | undefined {
  const parsed = StateSchema.safeParse(value);
  if (!parsed.success) return undefined;
  const s = parsed.data;
  if (s.enabled === undefined && s.rollout_percentage === undefined) return undefined;
  const pct = s.rollout_percentage === undefined ? '' : ` at ${s.rollout_percentage}%`;
  const targets = s.targets && s.targets.length > 0 ? `, ${s.targets.length} targeted user${s.targets.length === 1 ? '' : 's'}` : '';
  return `${s.enabled === false ? 'off' : 'on'}${pct}${targets}`;
}

function statePercentage(value: unknown): number | undefined {
  const parsed = StateSchema.safeParse(value);
  return parsed.success ? parsed.data.rollout_percentage : undefined;
}

function dateOr(value: string | null | undefined, fallback: Date): Date {
  if (value === undefined || value === null) return fallback;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? fallback : d;
}

function link(dashboardUrl: string | undefined, params: Record<string, string>, label: string): NotificationMessage['link'] {
  if (dashboardUrl === undefined || dashboardUrl === '') return undefined;
  try {
    const url = new URL(dashboardUrl);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return { url: url.toString(), label };
  } catch {
    return undefined;
  }
}

/**
 * The evidence lines of a verdict: flag-on and flag-off rates with counts, the threshold or
 * allowed increase, the confidence bound, alpha, statistic, window (and how many windows of the
 * stage the counts span, when more than one) and polls.
 *
 * @example
 * evidenceFacts({ unit: 'users', treatment: { total: 1000, errors: 91, rate: 0.091 }, threshold: 0.05 });
 * // [{ label: 'Flag on', value: '9.1% errors (91 of 1,000 users)' }, { label: 'Threshold', value: '5% error rate' }]
 */
export function evidenceFacts(evidence: unknown): MessageFact[] {
  const parsed = EvidenceSchema.safeParse(evidence);
  if (!parsed.success) return [];
  const e = parsed.data;
  const unit = e.unit ?? 'users';
  const out: MessageFact[] = [];
  const cohort = (label: string, c: z.infer<typeof CohortSchema> | undefined): void => {
    if (!c) return;
    const rate = c.rate ?? (c.total > 0 ? c.errors / c.total : 0);
    out.push({ label, value: `${formatRate(rate)} errors (${formatCount(c.errors)} of ${formatCount(c.total)} ${unit})` });
  };
  cohort('Flag on', e.treatment);
  cohort('Flag off', e.control);
  if (e.threshold !== undefined) out.push({ label: 'Threshold', value: `${formatRate(e.threshold)} error rate` });
  if (e.max_increase !== undefined) out.push({ label: 'Allowed increase', value: `+${formatRate(e.max_increase)} over flag off` });
  if (e.margin !== undefined) {
    const shown = e.log_e_value === undefined || e.alpha === undefined ? '' : ` (evidence ${Math.exp(e.log_e_value).toPrecision(3)}, needed ${(1 / e.alpha).toPrecision(3)})`;
    out.push({ label: 'Safety', value: `flag on not worse than flag off by more than +${formatRate(e.margin)}${shown}` });
  }
  if (e.lower_bound !== undefined) {
    const relative = e.condition === 'relative' || (e.max_increase !== undefined && e.threshold === undefined);
    out.push({
      label: relative ? 'Lower bound of the increase' : 'Lower bound of the rate',
      value: `${relative && e.lower_bound >= 0 ? '+' : ''}${formatRate(e.lower_bound)}${e.alpha !== undefined ? ` (always-valid, ${formatRate(1 - e.alpha)} confidence)` : ''}`,
    });
  } else if (e.alpha !== undefined) {
    out.push({ label: 'Alpha', value: String(e.alpha) });
  }
  if (e.statistic !== undefined) out.push({ label: 'Statistic', value: e.statistic });
  if (e.window !== undefined) out.push({ label: 'Window', value: formatDuration(e.window) });
  if (e.segments !== undefined && e.segments > 1) {
    out.push({ label: 'Counted over', value: `the last ${e.segments} windows of the stage${e.since !== undefined ? ` (since ${e.since})` : ''}` });
  }
  if (e.polls !== undefined) out.push({ label: 'Polls', value: String(e.polls) });
  return out;
}

function rollbackMessage(row: OutboxRow, options: MessageOptions): NotificationMessage {
  const p = EventPayloadSchema.safeParse(row.payload);
  const e = p.success ? p.data : {};
  const flag = e.flag ?? '(unknown flag)';
  const kind = e.kind ?? 'auto_rollback';
  const action = e.action ?? undefined;
  const actor = e.actor ?? undefined;
  const at = dateOr(e.created_at, row.createdAt);
  const before = describeState(e.previous_state);
  const after = describeState(e.new_state);
  const stepTo = statePercentage(e.new_state);
  const actionText =
    action === 'disable' ? `disabled ${flag}` : action === 'step_back' ? `stepped ${flag} back${stepTo === undefined ? '' : ` to ${stepTo}%`}` : action === 'notify_only' ? `flagged ${flag} (notify only, not changed)` : `rolled back ${flag}`;

  let title: string;
  let severity: NotificationMessage['severity'];
  let summary: string;
  let restore = false;
  switch (kind) {
    case 'dry_run':
      severity = 'warning';
      title = `[dry run] Guardian would have ${actionText.replace(' (notify only, not changed)', '')}`;
      summary = `Dry run: nothing was changed. ${e.reason ?? ''}`.trim();
      break;
    case 'manual_rollback':
      severity = 'critical';
      title = `${flag} rolled back by ${actor ?? 'someone'}`;
      summary = e.reason ?? `${actor ?? 'Someone'} ${actionText}.`;
      restore = action !== 'notify_only';
      break;
    case 'restore':
      severity = 'info';
      title = `${flag} restored by ${actor ?? 'someone'}`;
      summary = `${flag} is back as it was before its rollback${e.restores_event_id != null ? ` (event ${e.restores_event_id})` : ''}; the guardian watches it again.${e.reason ? ` ${e.reason}` : ''}`;
      break;
    case 'promote': {
      const final = isRecord(e.evidence) && e.evidence['final'] === true;
      severity = 'info';
      title = final ? `${flag} release complete: promoted to ${stepTo ?? 100}%` : `${flag} promoted to ${stepTo === undefined ? 'its next stage' : `${stepTo}%`}`;
      summary = e.reason ?? `The guardian promoted ${flag} on evidence of safety.`;
      break;
    }
    case 'plan_paused':
      severity = 'warning';
      title = `${flag} release paused`;
      summary = e.reason ?? `The release plan of ${flag} is paused.`;
      break;
    case 'plan_resumed':
    case 'plan_aborted':
      severity = 'info';
      title = `${flag} release ${kind === 'plan_resumed' ? 'resumed' : 'aborted'} by ${actor ?? 'someone'}`;
      summary = e.reason ?? title;
      break;
    default:
      severity = action === 'notify_only' ? 'warning' : 'critical';
      title = action === 'notify_only' ? `${flag} is breaching ${e.rule_id ?? 'its rule'} (notify only)` : `Guardian ${actionText}`;
      summary = e.reason ?? `Rule ${e.rule_id ?? '(unknown)'} breached.`;
      restore = action !== 'notify_only';
  }

  const facts: MessageFact[] = [{ label: 'Flag', value: flag }];
  if (e.rule_id) facts.push({ label: 'Rule', value: e.rule_id });
  if (action) facts.push({ label: 'Action', value: kind === 'dry_run' ? `${action} (dry run)` : action });
  if (e.source) facts.push({ label: 'Source', value: e.source });
  if (before !== undefined && after !== undefined) facts.push({ label: 'State', value: kind === 'dry_run' ? `${before} (would be ${after})` : `${before} → ${after}` });
  if (actor) facts.push({ label: 'Actor', value: actor });
  // What users go through: an urgent rollback takes the feature away at once, and the message they are shown.
  const rolledBack = kind === 'auto_rollback' || kind === 'manual_rollback' || kind === 'dry_run';
  const users = isRecord(e.new_state) && rolledBack && action !== 'notify_only' ? e.new_state : undefined;
  const urgent = users?.['rollback_urgent'] === true;
  if (urgent) {
    if (kind !== 'dry_run') title = `URGENT: ${title}`;
    facts.push({ label: 'Urgent', value: `yes: users ${kind === 'dry_run' ? 'would leave' : 'leave'} the feature at once, without waiting for the app's safe points` });
  }
  const shown = users?.['rollback_message'];
  if (typeof shown === 'string' && shown.trim() !== '') facts.push({ label: 'Users see', value: shown });
  facts.push({ label: 'Time', value: at.toISOString() });
  if (e.event_id !== undefined) facts.push({ label: 'Event', value: String(e.event_id) });

  return {
    id: row.id,
    topic: 'rollback_event',
    kind,
    severity,
    flag,
    ...(e.source ? { source: e.source } : {}),
    title,
    summary,
    facts,
    evidence: kind === 'restore' ? [] : evidenceFacts(e.evidence),
    ...(restore ? { restoreCommand: `guardian restore ${flag}` } : {}),
    ...withLink(link(options.dashboardUrl, { flag, ...(e.event_id !== undefined ? { event: String(e.event_id) } : {}) }, `Open ${flag} in the dashboard`)),
    at,
  };
}

function withLink(l: NotificationMessage['link']): { link?: NonNullable<NotificationMessage['link']> } {
  return l === undefined ? {} : { link: l };
}

function sourceMessage(row: OutboxRow, options: MessageOptions): NotificationMessage {
  const p = SourcePayloadSchema.safeParse(row.payload);
  const s = p.success ? p.data : {};
  const key = s.source ?? '(unknown source)';
  // A per-flag health key (`flag:<flag>@<source>`): the alert names the flag.
  const perFlag = parseFlagHealthKey(key);
  const source = perFlag?.source ?? key;
  const flag = perFlag?.flag;
  const facts: MessageFact[] = [...(flag ? [{ label: 'Flag', value: flag }] : []), { label: 'Source', value: source }];
  if (s.blind_since) facts.push({ label: 'No data since', value: dateOr(s.blind_since, row.createdAt).toISOString() });
  if (s.last_ok_at) facts.push({ label: 'Last good poll', value: dateOr(s.last_ok_at, row.createdAt).toISOString() });
  const l = flag ? link(options.dashboardUrl, { flag }, `Open ${flag} in the dashboard`) : link(options.dashboardUrl, { source }, 'Open the dashboard');
  if (row.topic === 'blindness') {
    const at = dateOr(s.detected_at, row.createdAt);
    const blindFor = s.blind_since ? at.getTime() - dateOr(s.blind_since, at).getTime() : undefined;
    if (s.last_error) facts.push({ label: flag ? 'Reason' : 'Last error', value: s.last_error });
    if (s.blind_after_seconds !== undefined) facts.push({ label: 'Alert after', value: formatDuration(s.blind_after_seconds * 1000) });
    return {
      id: row.id,
      topic: 'blindness',
      severity: 'warning',
      source,
      ...(flag ? { flag } : {}),
      title: flag
        ? `Guardian is blind on ${flag}: no usable data from ${source}${blindFor !== undefined ? ` for ${formatDuration(blindFor)}` : ''}`
        : `Guardian is blind: no data from ${source}${blindFor !== undefined ? ` for ${formatDuration(blindFor)}` : ''}`,
      summary: flag
        ? `${source} answers for other flags, but not usably for ${flag}${s.last_error ? ` (${s.last_error})` : ''}, so ${flag} will NOT be rolled back automatically until its data returns. Check that its events carry the flag, and the query's errors.`
        : `The guardian cannot see error rates from ${source}, so flags it watches will NOT be rolled back automatically until data returns. Check the source's credentials, rate limits and status.`,
      facts,
      evidence: [],
      ...withLink(l),
      at,
    };
  }
  const at = dateOr(s.recovered_at, row.createdAt);
  if (s.blind_for_seconds !== undefined) facts.push({ label: 'Blind for', value: formatDuration(s.blind_for_seconds * 1000) });
  return {
    id: row.id,
    topic: 'recovery',
    severity: 'resolved',
    source,
    ...(flag ? { flag } : {}),
    title: flag ? `Guardian sees ${flag} again on ${source}` : `Guardian sees ${source} again`,
    summary: `Data ${flag ? `for ${flag} ` : ''}from ${source} is back${s.blind_for_seconds !== undefined ? ` after ${formatDuration(s.blind_for_seconds * 1000)}` : ''}; automatic rollbacks are protected again.`,
    facts,
    evidence: [],
    ...withLink(l),
    at,
  };
}

/**
 * Builds the message for an outbox row (any topic).
 *
 * @example
 * const message = messageFromOutbox(row, { dashboardUrl: 'https://guardian.example.com' });
 * await notifiers.get(row.channel)?.send(message);
 */
export function messageFromOutbox(row: OutboxRow, options: MessageOptions = {}): NotificationMessage {
  return row.topic === 'rollback_event' ? rollbackMessage(row, options) : sourceMessage(row, options);
}

/**
 * The message as plain text (email body, Slack `text` fallback, logs).
 *
 * @example
 * console.log(messageText(message));
 */
export function messageText(message: NotificationMessage): string {
  const lines = [message.title, '', message.summary, ''];
  for (const f of message.facts) lines.push(`${f.label}: ${f.value}`);
  if (message.evidence.length > 0) {
    lines.push('', 'Evidence:');
    for (const f of message.evidence) lines.push(`  ${f.label}: ${f.value}`);
  }
  if (message.restoreCommand) lines.push('', `To restore: ${message.restoreCommand}`);
  if (message.link) lines.push('', `${message.link.label}: ${message.link.url}`);
  return `${lines.join('\n').trimEnd()}\n`;
}
