/** Formatting for people: percentages, counts, times and flag states, all as plain text. */
import type { Counts, GuardState, StateSnapshot } from './api/types.ts';

export function pct(rate: number | null | undefined, digits = 1): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '–';
  return `${(rate * 100).toFixed(digits)}%`;
}

export function num(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : n.toLocaleString('en-US');
}

/** `3 / 400 users (0.8%)` */
export function counts(c: Counts | null | undefined): string {
  if (!c) return 'no data';
  const rate = c.total > 0 ? c.errors / c.total : null;
  return `${num(c.errors)} / ${num(c.total)} ${c.unit} (${pct(rate)})`;
}

export function rate(c: Counts | null | undefined): number | null {
  return c && c.total > 0 ? c.errors / c.total : null;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const ms = now - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return iso;
  const s = Math.round(Math.abs(ms) / 1000);
  const text = s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86_400 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} d`;
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

export const GUARD_WORDS: Record<GuardState, { icon: string; label: string; help: string }> = {
  watching: { icon: '◉', label: 'Watching', help: 'The guardian watches this flag and may roll it back.' },
  rolled_back: { icon: '⟲', label: 'Rolled back', help: 'The guardian rolled this flag back; only a person can restore it.' },
  locked: { icon: 'lock', label: 'Locked', help: 'The guardian never acts on this flag.' },
};

/** `on at 50%` / `off (was 50%)` */
export function flagState(s: { enabled?: boolean; rolloutPercentage?: number }): string {
  if (s.enabled === undefined) return 'unknown';
  return s.enabled ? `on at ${s.rolloutPercentage ?? '?'}%` : `off (${s.rolloutPercentage ?? '?'}% kept)`;
}

export function targetsText(t: StateSnapshot['targets']): string {
  if (t === undefined) return 'targets unchanged';
  if (Array.isArray(t)) return `${t.length.toLocaleString('en-US')} targeted user${t.length === 1 ? '' : 's'}`;
  const n = (t as { count: number }).count;
  return `${n.toLocaleString('en-US')} targeted user${n === 1 ? '' : 's'}`;
}

export const KIND_WORDS: Record<string, string> = {
  auto_rollback: 'Automatic rollback',
  manual_rollback: 'Manual rollback',
  restore: 'Restore',
  dry_run: 'Dry run (nothing changed)',
  promote: 'Promotion',
  change: 'Change',
};

/** `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`: a length of time for people. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}
