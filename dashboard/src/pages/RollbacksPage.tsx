/**
 * Rollbacks: the event log (rollbacks, restores, dry runs, promotions) with filters, each event's
 * evidence in words and numbers, the notifications sent and a link to restore; CSV export.
 */
import { useCallback, useEffect, useState } from 'react';
import type { FormEvent, ReactNode } from 'react';
import { ApiError } from '../api/client.ts';
import type { EventFilters } from '../api/client.ts';
import type { RollbackEvent } from '../api/types.ts';
import { ErrorNotice } from '../components/Notice.tsx';
import { flagState, KIND_WORDS, num, pct, targetsText, when } from '../format.ts';
import { useLiveMessages } from '../live.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';

const KINDS = ['', 'auto_rollback', 'manual_rollback', 'restore', 'dry_run', 'promote'];

interface Filters {
  flag: string;
  kind: string;
  rule: string;
  actor: string;
  since: string;
  until: string;
}
const EMPTY: Filters = { flag: '', kind: '', rule: '', actor: '', since: '', until: '' };

function toApi(f: Filters): EventFilters {
  const iso = (v: string) => (v ? new Date(v).toISOString() : undefined);
  return { flag: f.flag || undefined, kind: f.kind || undefined, rule: f.rule || undefined, actor: f.actor || undefined, since: iso(f.since), until: iso(f.until), limit: 50 };
}

const LABELS: Record<string, string> = {
  rate: 'Error rate',
  threshold: 'Threshold',
  bound: 'Bound',
  lowerBound: 'Lower bound',
  upperBound: 'Upper bound',
  statistic: 'Statistic',
  window: 'Window',
  windowMs: 'Window (ms)',
  alpha: 'Alpha',
  margin: 'Margin',
  consecutive: 'Consecutive breaches',
  summary: 'Summary',
};

function isCounts(v: unknown): v is { errors: number; total: number; unit?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { errors?: unknown }).errors === 'number' && typeof (v as { total?: unknown }).total === 'number';
}

const ORDER = ['summary', 'treatment', 'control', 'threshold', 'lowerBound', 'upperBound', 'bound', 'statistic', 'margin', 'alpha', 'window', 'windowMs', 'since', 'consecutive'];

function duration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}

function fact(key: string, v: unknown): string {
  if (isCounts(v)) return `${num(v.errors)} errors of ${num(v.total)} ${v.unit ?? ''} (${pct(v.total > 0 ? v.errors / v.total : null, 2)})`.replace('  ', ' ');
  if (typeof v === 'number' && /^window(Ms)?$/.test(key)) return duration(v);
  if (typeof v === 'number') return /rate|threshold|bound|margin|alpha/i.test(key) && Math.abs(v) <= 1 ? `${pct(v, 2)} (${Number(v.toPrecision(4))})` : Number.isInteger(v) ? num(v) : String(Number(v.toPrecision(6)));
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) return when(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** The evidence object as label/value pairs: words and the decisive numbers first. */
export function evidenceFacts(e: RollbackEvent['evidence']): { label: string; value: string }[] {
  if (!e) return [];
  const rank = (k: string) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);
  return Object.entries(e)
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([k, v]) => ({
      label: k === 'treatment' ? 'Flag on' : k === 'control' ? 'Flag off' : (LABELS[k] ?? k.replace(/([A-Z])/g, ' $1').replace(/_/g, ' ').toLowerCase().replace(/^./, (c) => c.toUpperCase())),
      value: fact(k, v),
    }));
}

export function RollbacksPage(): ReactNode {
  const { api } = useSession();
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [events, setEvents] = useState<RollbackEvent[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [fresh, setFresh] = useState<Set<string>>(new Set());

  const load = useCallback(
    async (cursor: string | null = null) => {
      try {
        const r = await api.events({ ...toApi(applied), cursor });
        setEvents((old) => (cursor && old ? [...old, ...r.events] : r.events));
        setNext(r.nextCursor);
        setError(null);
      } catch (err) {
        setError(err instanceof ApiError ? err.describe() : (err as Error).message);
      }
    },
    [api, applied],
  );
  useEffect(() => void load(), [load]);

  useLiveMessages((m) => {
    if (m.type === 'reset') void load();
    if (m.type === 'rollback_event') {
      setFresh((s) => new Set(s).add(m.data.id));
      void load();
    }
  });

  function apply(e: FormEvent): void {
    e.preventDefault();
    setApplied(filters);
  }

  async function exportCsv(): Promise<void> {
    try {
      const csv = await api.eventsCsv({ ...toApi(applied), limit: 10_000 });
      const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `rollback-events-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(`CSV export failed: ${err instanceof ApiError ? err.describe() : (err as Error).message}`);
    }
  }

  const field = (key: keyof Filters, label: string, type = 'text') => (
    <div className="field">
      <label htmlFor={`ev-${key}`}>{label}</label>
      <input id={`ev-${key}`} type={type} value={filters[key]} onChange={(e) => setFilters({ ...filters, [key]: e.target.value })} />
    </div>
  );

  return (
    <section aria-labelledby="rb-title">
      <div className="page-head">
        <h1 id="rb-title">Rollbacks</h1>
        <button type="button" onClick={() => void exportCsv()}>
          Export CSV
        </button>
      </div>
      <form className="toolbar filters" onSubmit={apply} aria-label="Filter events">
        {field('flag', 'Flag')}
        <div className="field">
          <label htmlFor="ev-kind">Kind</label>
          <select id="ev-kind" value={filters.kind} onChange={(e) => setFilters({ ...filters, kind: e.target.value })}>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k === '' ? 'All kinds' : KIND_WORDS[k] ?? k}
              </option>
            ))}
          </select>
        </div>
        {field('rule', 'Rule')}
        {field('actor', 'Actor')}
        {field('since', 'From', 'datetime-local')}
        {field('until', 'Until', 'datetime-local')}
        <div className="field actions">
          <button type="submit" className="primary">Apply filters</button>
          <button type="button" onClick={() => { setFilters(EMPTY); setApplied(EMPTY); }}>Clear</button>
        </div>
      </form>
      {error && <ErrorNotice>{error}</ErrorNotice>}
      {events && events.length === 0 && <p className="empty">No events match.</p>}
      <ol className="plain events">
        {(events ?? []).map((e) => (
          <EventCard key={e.id} event={e} fresh={fresh.has(e.id)} />
        ))}
      </ol>
      {next && (
        <button type="button" onClick={() => void load(next)}>
          Older events
        </button>
      )}
    </section>
  );
}

function EventCard(props: { event: RollbackEvent; fresh: boolean }): ReactNode {
  const e = props.event;
  const facts = evidenceFacts(e.evidence);
  const rollback = e.kind === 'auto_rollback' || e.kind === 'manual_rollback';
  return (
    <li className={`card event kind-${e.kind}${props.fresh ? ' flash' : ''}`} data-event={e.id}>
      <div className="card-head">
        <h2 className="event-title">
          <span className={`badge kind ${rollback ? 'bad' : e.kind === 'restore' ? 'ok' : 'neutral'}`}>
            <span aria-hidden="true">{rollback ? '⟲' : e.kind === 'restore' ? '↺' : e.kind === 'promote' ? '↑' : '•'}</span> {KIND_WORDS[e.kind] ?? e.kind}
          </span>{' '}
          <Link to={`/flags/${encodeURIComponent(e.flag)}`} className="flag-name">{e.flag}</Link>
        </h2>
        <span className="muted small">#{e.id} · {when(e.createdAt)}</span>
      </div>
      <p className="small">
        {e.actor ? <>By <strong>{e.actor}</strong></> : 'By the guardian'}
        {e.ruleId ? <> · rule <strong>{e.ruleId}</strong></> : null}
        {e.source ? ` · source ${e.source}` : ''}
        {e.action ? ` · action ${e.action.replace(/_/g, ' ')}` : ''}
        {e.restoresEventId ? ` · restores #${e.restoresEventId}` : ''}
      </p>
      {e.reason && <p className="reason">{e.reason}</p>}
      {(e.previousState || e.newState) && (
        <p className="small">
          {e.previousState ? flagState(e.previousState) : '?'} → <strong>{e.newState ? flagState(e.newState) : '?'}</strong>
          {e.previousState?.targets !== undefined ? ` · ${targetsText(e.previousState.targets)} kept for restore` : ''}
        </p>
      )}
      {facts.length > 0 && (
        <details>
          <summary>Evidence</summary>
          <dl className="facts small">
            {facts.map((f) => (
              <div key={f.label} className="fact">
                <dt>{f.label}</dt>
                <dd>{f.value}</dd>
              </div>
            ))}
          </dl>
        </details>
      )}
      {e.notifications && e.notifications.length > 0 && (
        <ul className="plain notifications small" aria-label="Notifications">
          {e.notifications.map((n) => (
            <li key={n.channel}>
              <span aria-hidden="true">{n.status === 'delivered' ? '✓' : n.status === 'failed' ? '✕' : '…'}</span> {n.channel}: {n.status}
              {n.deliveredAt ? ` at ${when(n.deliveredAt)}` : ''} ({n.attempts} attempt{n.attempts === 1 ? '' : 's'})
              {n.lastError ? ` · last error: ${n.lastError}` : ''}
            </li>
          ))}
        </ul>
      )}
      {rollback && (
        <p>
          <Link to={`/flags/${encodeURIComponent(e.flag)}`}>Restore {e.flag} on its page →</Link>
        </p>
      )}
    </li>
  );
}
