/**
 * Charts on uPlot: a time series with optional horizontal threshold lines and vertical markers
 * (rollout changes, rollbacks) drawn by a uPlot `draw` hook. Each chart also has a text summary
 * for screen readers (role=img + aria-label), and dashed vs solid lines so colour is not the only cue.
 */
import { useEffect, useRef } from 'react';
import type { ReactNode } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  readonly label: string;
  readonly color: string;
  readonly values: readonly (number | null)[];
  readonly dash?: readonly number[];
}

export interface ChartMarker {
  readonly at: number; // unix seconds
  readonly label: string;
  readonly color: string;
}

export interface ChartLine {
  readonly value: number;
  readonly label: string;
  readonly color: string;
}

export interface TimeChartProps {
  readonly times: readonly number[]; // unix seconds
  readonly series: readonly ChartSeries[];
  readonly height: number;
  readonly summary: string;
  readonly yFormat?: (v: number) => string;
  readonly markers?: readonly ChartMarker[];
  readonly lines?: readonly ChartLine[];
  readonly compact?: boolean;
  /** The x range in unix seconds (default: the data's first and last time). */
  readonly xRange?: readonly [number, number];
  /** The y axis reaches at least this (so an all-zero series does not get a 0…0 axis). */
  readonly yAtLeast?: number;
}

function overlays(markers: readonly ChartMarker[], lines: readonly ChartLine[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u: uPlot) => {
          const { ctx } = u;
          const { left, top, width, height } = u.bbox;
          ctx.save();
          ctx.lineWidth = 1.5 * devicePixelRatio;
          for (const l of lines) {
            const y = u.valToPos(l.value, 'y', true);
            if (y < top || y > top + height) continue;
            ctx.strokeStyle = l.color;
            ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(left, y);
            ctx.lineTo(left + width, y);
            ctx.stroke();
            ctx.fillStyle = l.color;
            ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
            ctx.textAlign = 'right';
            ctx.fillText(l.label, left + width - 4 * devicePixelRatio, y - 4 * devicePixelRatio);
            ctx.textAlign = 'left';
          }
          ctx.setLineDash([2 * devicePixelRatio, 3 * devicePixelRatio]);
          for (const m of markers) {
            const x = u.valToPos(m.at, 'x', true);
            if (x < left || x > left + width) continue;
            ctx.strokeStyle = m.color;
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.fillStyle = m.color;
            ctx.font = `${10 * devicePixelRatio}px system-ui, sans-serif`;
            ctx.fillText(m.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
          }
          ctx.restore();
        },
      ],
    },
  };
}

export function TimeChart(props: TimeChartProps): ReactNode {
  const box = useRef<HTMLDivElement>(null);
  const { times, series, height, yFormat, markers, lines, compact, xRange, yAtLeast } = props;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const data = [times.slice(), ...series.map((s) => s.values.slice())] as uPlot.AlignedData;
    const fmt = yFormat ?? ((v: number) => String(v));
    const opts: uPlot.Options = {
      width: Math.max(80, el.clientWidth),
      height,
      legend: { show: !compact },
      cursor: compact ? { show: false } : { drag: { x: false, y: false } },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: true, ...(xRange ? { range: [xRange[0], xRange[1]] as uPlot.Range.MinMax } : {}) }, y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max((max ?? 0) * 1.15, lines?.reduce((m, l) => Math.max(m, l.value * 1.2), 0) ?? 0, yAtLeast ?? (compact ? 0.01 : 1e-9))] } },
      axes: compact
        ? [{ show: false }, { show: false }]
        : [
            { stroke: '#4b5563', grid: { stroke: '#e5e7eb' }, ticks: { stroke: '#e5e7eb' } },
            { stroke: '#4b5563', grid: { stroke: '#e5e7eb' }, ticks: { stroke: '#e5e7eb' }, values: (_u, vals) => vals.map((v) => fmt(v)), size: 56 },
          ],
      series: [
        {},
        ...series.map((s) => ({ label: s.label, stroke: s.color, width: compact ? 1.5 : 2, spanGaps: true, points: { show: !compact && times.length <= 48 }, ...(s.dash ? { dash: s.dash.slice() } : {}), value: (_u: uPlot, v: number | null) => (v === null ? '–' : fmt(v)) })),
      ],
      plugins: [overlays(markers ?? [], lines ?? [])],
    };
    const plot = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(80, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [times, series, height, yFormat, markers, lines, compact, xRange, yAtLeast]);

  return <div ref={box} className={compact ? 'chart compact' : 'chart'} role="img" aria-label={props.summary} />;
}
