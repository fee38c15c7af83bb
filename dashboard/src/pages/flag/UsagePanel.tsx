/**
 * Usage analytics of one flag over an hour, a day or a week: flag-on and flag-off users, the
 * error rate of each cohort with the rules' thresholds, every rollout change and rollback marked.
 */
import { useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../../api/client.ts';
import type { Flag, Usage } from '../../api/types.ts';
import { TimeChart } from '../../components/Chart.tsx';
import type { ChartLine, ChartMarker, ChartSeries } from '../../components/Chart.tsx';
import { OFF_COLOR, ON_COLOR, rates } from '../../components/ErrorRateSpark.tsx';
import { ErrorNotice } from '../../components/Notice.tsx';
import { KIND_WORDS, num, pct, when } from '../../format.ts';
import { useSession } from '../../session.tsx';

const RANGES = {
  hour: { label: 'Hour', bucket: 'minute', ms: 3600_000 },
  day: { label: 'Day', bucket: 'hour', ms: 24 * 3600_000 },
  week: { label: 'Week', bucket: 'hour', ms: 7 * 24 * 3600_000 },
} as const;
type Range = keyof typeof RANGES;

const MARK_COLOR: Record<string, string> = { auto_rollback: '#b91c1c', manual_rollback: '#b91c1c', restore: '#15803d', promote: '#7c3aed', change: '#374151' };

function changeLabel(c: Usage['changes'][number]): string {
  if (c.kind === 'change' || c.kind === 'promote') return c.enabled === false ? 'off' : c.rolloutPercentage !== null ? `${c.rolloutPercentage}%` : 'change';
  return KIND_WORDS[c.kind]?.split(' ')[0] ?? c.kind;
}

export function UsagePanel(props: { flag: Flag; revision: number }): ReactNode {
  const { api } = useSession();
  const [range, setRange] = useState<Range>('day');
  const [usage, setUsage] = useState<Usage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const name = props.flag.name;

  useEffect(() => {
    const ctl = new AbortController();
    const r = RANGES[range];
    api.usage(name, r.bucket, new Date(Date.now() - r.ms), ctl.signal).then(
      (u) => {
        setUsage(u);
        setError(null);
      },
      (err: unknown) => {
        if ((err as Error).name !== 'AbortError') setError(err instanceof ApiError ? err.describe() : (err as Error).message);
      },
    );
    return () => ctl.abort();
  }, [api, name, range, props.revision]);

  const view = useMemo(() => {
    if (!usage) return null;
    const r = rates(usage);
    const users: ChartSeries[] = [
      { label: 'Flag-on users', color: ON_COLOR, values: usage.series.map((p) => p.on.users) },
      { label: 'Flag-off users', color: OFF_COLOR, values: usage.series.map((p) => p.off.users), dash: [6, 4] },
    ];
    const errs: ChartSeries[] = [
      { label: 'Flag-on error rate', color: ON_COLOR, values: r.on },
      { label: 'Flag-off error rate', color: OFF_COLOR, values: r.off, dash: [6, 4] },
    ];
    const markers: ChartMarker[] = usage.changes.map((c) => ({ at: new Date(c.at).getTime() / 1000, label: changeLabel(c), color: MARK_COLOR[c.kind] ?? '#374151' }));
    const lines: ChartLine[] = usage.thresholds.filter((t) => t.kind === 'absolute').map((t) => ({ value: t.value, label: `${t.ruleId} ${pct(t.value)}`, color: '#b91c1c' }));
    const sum = (k: 'on' | 'off', f: 'users' | 'errorUsers') => usage.series.reduce((s, p) => s + p[k][f], 0);
    const xRange: [number, number] = [new Date(usage.since).getTime() / 1000, new Date(usage.until).getTime() / 1000];
    return { xRange, times: r.times, users, errs, markers, lines, onUsers: sum('on', 'users'), offUsers: sum('off', 'users'), onErr: sum('on', 'errorUsers'), offErr: sum('off', 'errorUsers') };
  }, [usage]);

  const fmtPct = useMemo(() => (v: number) => pct(v, v < 0.1 ? 1 : 0), []);
  const fmtNum = useMemo(() => (v: number) => num(Math.round(v)), []);

  return (
    <div className="card" aria-labelledby="usage-title">
      <div className="card-head">
        <h2 id="usage-title">Usage and error rates</h2>
        <div className="row" role="group" aria-label="Time range">
          {(Object.keys(RANGES) as Range[]).map((k) => (
            <button key={k} type="button" aria-pressed={range === k} onClick={() => setRange(k)}>
              {RANGES[k].label}
            </button>
          ))}
        </div>
      </div>
      {error && <ErrorNotice title="Could not load the usage">{error}</ErrorNotice>}
      {!usage && !error && <p className="muted">Loading…</p>}
      {view && usage && (
        <>
          {view.onUsers + view.offUsers === 0 && (
            <p className="notice info small" role="note">
              No usage recorded in this range yet. It comes from the SDK's exposure reports (the builtin source) and the guardian's readings of PostHog or Sentry.
            </p>
          )}
          <p className="small legend">
            <span className="swatch on" aria-hidden="true" /> Flag on (solid line) · <span className="swatch off" aria-hidden="true" /> Flag off (dashed line)
            {view.lines.length > 0 && <> · <span className="swatch threshold" aria-hidden="true" /> rule threshold (red dashes)</>}
            {' '}· dotted verticals: rollout changes and rollbacks
          </p>
          <div className="grid two">
            <figure>
              <figcaption>Users per {usage.bucket}</figcaption>
              <TimeChart yAtLeast={4} xRange={view.xRange} times={view.times} series={view.users} height={200} yFormat={fmtNum} markers={view.markers} summary={`Users over the last ${RANGES[range].label.toLowerCase()}: ${num(view.onUsers)} flag-on and ${num(view.offUsers)} flag-off user counts summed over ${view.times.length} ${usage.bucket}s.`} />
            </figure>
            <figure>
              <figcaption>Error rate (users with an error)</figcaption>
              <TimeChart
                yAtLeast={0.04}
                xRange={view.xRange}
                times={view.times}
                series={view.errs}
                height={200}
                yFormat={fmtPct}
                markers={view.markers}
                lines={view.lines}
                summary={`Error rate over the last ${RANGES[range].label.toLowerCase()}: flag on ${pct(view.onUsers > 0 ? view.onErr / view.onUsers : null)}, flag off ${pct(view.offUsers > 0 ? view.offErr / view.offUsers : null)}${view.lines.length > 0 ? `; thresholds ${view.lines.map((l) => l.label).join(', ')}` : ''}.`}
              />
            </figure>
          </div>
          {usage.thresholds.some((t) => t.kind !== 'absolute') && (
            <p className="small muted">
              Relative rules: {usage.thresholds.filter((t) => t.kind !== 'absolute').map((t) => `${t.ruleId} rolls back when flag-on is worse than flag-off by more than ${pct(t.value)}`).join('; ')}.
            </p>
          )}
          <h3>Changes in this range</h3>
          {usage.changes.length === 0 ? (
            <p className="muted small">No rollout change or rollback.</p>
          ) : (
            <ul className="plain changes small">
              {usage.changes.map((c) => (
                <li key={`${c.at}:${c.kind}`}>
                  <span className="mark" style={{ borderColor: MARK_COLOR[c.kind] ?? '#374151' }} aria-hidden="true" />
                  {when(c.at)} · <strong>{KIND_WORDS[c.kind] ?? c.kind}</strong>
                  {c.enabled === null ? '' : c.enabled ? ` → on at ${c.rolloutPercentage ?? '?'}%` : ' → off'}
                  {c.actor ? ` by ${c.actor}` : ''}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </div>
  );
}
