/** The Flags list's small chart: flag-on vs flag-off error rate over the last 24 hours. */
import { useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import type { Usage } from '../api/types.ts';
import { pct } from '../format.ts';
import { useSession } from '../session.tsx';
import { TimeChart } from './Chart.tsx';
import type { ChartSeries } from './Chart.tsx';

export const ON_COLOR = '#b45309';
export const OFF_COLOR = '#1d4ed8';

export function rates(usage: Usage): { times: number[]; on: (number | null)[]; off: (number | null)[] } {
  return {
    times: usage.series.map((p) => Math.floor(new Date(p.t).getTime() / 1000)),
    on: usage.series.map((p) => (p.on.users > 0 ? p.on.errorUsers / p.on.users : null)),
    off: usage.series.map((p) => (p.off.users > 0 ? p.off.errorUsers / p.off.users : null)),
  };
}

function last(values: readonly (number | null)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i]!;
  return null;
}

export function ErrorRateSpark(props: { flag: string; refreshKey: number }): ReactNode {
  const { api } = useSession();
  const [usage, setUsage] = useState<Usage | null>(null);
  const [failed, setFailed] = useState<string | null>(null);

  useEffect(() => {
    const ctl = new AbortController();
    api.usage(props.flag, 'hour', new Date(Date.now() - 24 * 3600_000), ctl.signal).then(
      (u) => {
        setUsage(u);
        setFailed(null);
      },
      (err: unknown) => {
        if ((err as Error).name !== 'AbortError') setFailed((err as Error).message);
      },
    );
    return () => ctl.abort();
  }, [api, props.flag, props.refreshKey]);

  const data = useMemo(() => (usage ? rates(usage) : null), [usage]);
  const series = useMemo<ChartSeries[]>(() => (data ? [{ label: 'Flag on', color: ON_COLOR, values: data.on }, { label: 'Flag off', color: OFF_COLOR, values: data.off, dash: [3, 3] }] : []), [data]);

  if (failed) return <span className="muted small" title={failed}>No usage data</span>;
  if (!data) return <span className="muted small">Loading…</span>;
  if (data.times.length === 0 || (last(data.on) === null && last(data.off) === null)) return <span className="muted small">No traffic in 24 h</span>;
  const summary = `Error rate over 24 h: flag on ${pct(last(data.on))}, flag off ${pct(last(data.off))} in the latest hour`;
  return (
    <div className="spark">
      <TimeChart times={data.times} series={series} height={36} summary={summary} compact />
      <span className="spark-text small">
        <span className="swatch on" aria-hidden="true" />on {pct(last(data.on))} · <span className="swatch off" aria-hidden="true" />off {pct(last(data.off))}
      </span>
    </div>
  );
}
