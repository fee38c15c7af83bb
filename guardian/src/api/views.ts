/**
 * Store rows → the admin API's JSON (the contract's Flag, RollbackEvent, audit change), and CSV.
 */
import type { z } from 'zod';

import type { EventNotification, Flag, FlagChange, RollbackEvent, RuleState, Store } from '../store/types.ts';
import type { ChangeOut, EventOut, FlagOut, VerdictOut } from './schemas.ts';
import type { GuardianStatusSnapshot } from './status.ts';

type FlagJson = z.output<typeof FlagOut>;
type EventJson = z.output<typeof EventOut>;
type VerdictJson = z.output<typeof VerdictOut>;

/** The event a restore of `flag` would undo (its latest rollback, if not restored), from newest-first events. */
export function lastRollbackOf(events: readonly RollbackEvent[]): RollbackEvent | undefined {
  const latest = events.find((e) => e.kind !== 'dry_run' && e.action !== 'notify_only');
  return latest && latest.kind !== 'restore' ? latest : undefined;
}

/** An event as JSON (idempotency key left out; targets of the states kept: admins see targets). */
export function eventJson(e: RollbackEvent, notifications: readonly EventNotification[] = []): EventJson {
  const state = (s: RollbackEvent['previousState']) => ({
    enabled: s.enabled,
    rolloutPercentage: s.rolloutPercentage,
    targets: [...s.targets],
    guardState: s.guardState,
    ...(s.rollbackMessage !== undefined ? { rollbackMessage: s.rollbackMessage } : {}),
    ...(s.rollbackUrgent !== undefined ? { rollbackUrgent: s.rollbackUrgent } : {}),
  });
  return {
    id: e.id,
    flag: e.flag,
    kind: e.kind,
    ruleId: e.ruleId,
    source: e.source,
    action: e.action,
    reason: e.reason,
    evidence: { ...e.evidence },
    previousState: state(e.previousState),
    newState: state(e.newState),
    actor: e.actor,
    restoresEventId: e.restoresEventId,
    createdAt: e.createdAt.toISOString(),
    notifications: notifications.map((n) => ({
      channel: n.channel,
      status: n.status,
      attempts: n.attempts,
      deliveredAt: n.deliveredAt?.toISOString() ?? null,
      lastError: n.lastError,
    })),
  };
}

/** Events as JSON with their notifications (one outbox read for all). */
export async function eventsJson(store: Store, events: readonly RollbackEvent[]): Promise<EventJson[]> {
  const notes = await store.eventNotifications(events.map((e) => e.id));
  return events.map((e) => eventJson(e, notes.get(e.id) ?? []));
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** A rule's stored verdict as the contract's verdict item. */
export function verdictJson(s: RuleState, status: GuardianStatusSnapshot): VerdictJson {
  const rule = status.rules.find((r) => r.id === s.ruleId);
  const ev = (s.lastEvidence ?? {}) as Record<string, unknown>;
  const unit = ev['unit'] === 'events' ? 'events' : 'users';
  const cohort = (v: unknown) => {
    if (v === null || typeof v !== 'object') return null;
    const c = v as Record<string, unknown>;
    const total = num(c['total']);
    const errors = num(c['errors']);
    return total === null || errors === null ? null : { errors, total, unit: unit as 'users' | 'events' };
  };
  return {
    ruleId: s.ruleId,
    source: rule?.source ?? null,
    verdict: s.lastVerdict ?? 'none',
    at: s.updatedAt.toISOString(),
    summary: typeof ev['reason'] === 'string' ? ev['reason'] : '',
    treatment: cohort(ev['treatment']),
    control: cohort(ev['control']),
    threshold: num(ev['threshold']) ?? num(ev['max_increase']),
  };
}

/**
 * Flags as the contract's Flag: with their verdicts (rule state), exposures since their stage
 * start (builtin counts) and the rollback a restore would undo. A few reads for all the flags.
 */
export async function flagsJson(store: Store, flags: readonly Flag[], status: GuardianStatusSnapshot): Promise<FlagJson[]> {
  if (flags.length === 0) return [];
  const [states, exposures] = await Promise.all([
    store.loadRuleState(),
    store.exposureCounts(flags.map((f) => ({ flag: f.name, since: f.stageStartedAt }))).catch(() => new Map<string, never>()),
  ]);
  const rolledBack = flags.filter((f) => f.guardState === 'rolled_back');
  const lastEvents = new Map<string, RollbackEvent | undefined>();
  await Promise.all(rolledBack.map(async (f) => lastEvents.set(f.name, lastRollbackOf(await store.listEvents({ flag: f.name, limit: 50 })))));
  const lastList = [...lastEvents.values()].filter((e): e is RollbackEvent => e !== undefined);
  const lastJson = new Map((await eventsJson(store, lastList)).map((e) => [e.flag, e]));
  return flags.map((f) => {
    const ex = exposures.get(f.name);
    return {
      name: f.name,
      description: f.description,
      enabled: f.enabled,
      rolloutPercentage: f.rolloutPercentage,
      bucketGroup: f.bucketGroup,
      version: f.version,
      updatedAt: f.updatedAt.toISOString(),
      updatedBy: f.updatedBy,
      guardState: f.guardState,
      rollbackMessage: f.rollbackMessage,
      rollbackUrgent: f.rollbackUrgent,
      stageStartedAt: f.stageStartedAt.toISOString(),
      targetCount: f.targets.length,
      verdicts: states.filter((s) => s.flag === f.name).map((s) => verdictJson(s, status)),
      exposures: ex ? { on: ex.treatment.total, off: ex.control.total, since: f.stageStartedAt.toISOString() } : null,
      lastRollback: lastJson.get(f.name) ?? null,
    };
  });
}

const BOOKKEEPING = new Set(['version', 'updated_at', 'updated_by', 'stage_started_at']);

/** An audit row as JSON: `fields` names what changed (bookkeeping columns left out). */
export function changeJson(c: FlagChange): z.output<typeof ChangeOut> {
  const keys = new Set([...Object.keys(c.oldRow ?? {}), ...Object.keys(c.newRow ?? {})]);
  const fields =
    c.op === 'update'
      ? [...keys].filter((k) => !BOOKKEEPING.has(k) && JSON.stringify(c.oldRow?.[k]) !== JSON.stringify(c.newRow?.[k])).sort()
      : c.op === 'target_add' || c.op === 'target_remove'
        ? ['targets']
        : [...keys].filter((k) => !BOOKKEEPING.has(k)).sort();
  return {
    id: c.id,
    flag: c.flag,
    op: c.op.toUpperCase() as z.output<typeof ChangeOut>['op'],
    actor: c.actor,
    at: c.at.toISOString(),
    fields,
    old: c.oldRow ? { ...c.oldRow } : null,
    new: c.newRow ? { ...c.newRow } : null,
  };
}

/** One CSV field (RFC 4180 quoting; a leading =, +, -, @ is prefixed with ' so spreadsheets do not run it). */
function csvField(v: unknown): string {
  let s = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * CSV text: a header row, then one line per item.
 *
 * @example
 * toCsv(['id', 'flag'], [{ id: '1', flag: 'f' }]); // "id,flag\r\n1,f\r\n"
 */
export function toCsv(columns: readonly string[], rows: readonly Record<string, unknown>[]): string {
  return [columns.join(','), ...rows.map((r) => columns.map((c) => csvField(r[c])).join(','))].map((l) => `${l}\r\n`).join('');
}
