/** Guard state, on/off and verdict badges: an icon AND words, never colour alone. */
import type { ReactNode } from 'react';
import type { GuardState, Verdict } from '../api/types.ts';
import { counts, GUARD_WORDS, pct } from '../format.ts';
import { Icon } from './Icon.tsx';

export function GuardBadge(props: { state: GuardState }): ReactNode {
  const w = GUARD_WORDS[props.state] ?? { icon: '?', label: props.state, help: '' };
  return (
    <span className={`badge guard-${props.state}`} title={w.help}>
      {w.icon === 'lock' ? <Icon name="lock" /> : <span aria-hidden="true">{w.icon}</span>} {w.label}
    </span>
  );
}

export function OnOffBadge(props: { enabled: boolean; percentage: number }): ReactNode {
  return props.enabled ? (
    <span className="badge on">
      <span aria-hidden="true">●</span> On · {props.percentage}%
    </span>
  ) : (
    <span className="badge off">
      <span aria-hidden="true">○</span> Off
    </span>
  );
}

const VERDICT: Record<string, { icon: string; label: string; cls: string }> = {
  ok: { icon: '✓', label: 'OK', cls: 'ok' },
  healthy: { icon: '✓', label: 'Healthy', cls: 'ok' },
  insufficient_data: { icon: '…', label: 'Too few users', cls: 'neutral' },
  none: { icon: '–', label: 'Not judged yet', cls: 'neutral' },
  breach: { icon: '✕', label: 'Breach', cls: 'bad' },
  no_data: { icon: '∅', label: 'No data', cls: 'neutral' },
  insufficient: { icon: '…', label: 'Too few users', cls: 'neutral' },
  pending: { icon: '…', label: 'Pending', cls: 'neutral' },
  error: { icon: '!', label: 'Source error', cls: 'warn' },
  blind: { icon: '!', label: 'Blind', cls: 'warn' },
};

export function verdictWords(v: string): { icon: string; label: string; cls: string } {
  return VERDICT[v] ?? { icon: '•', label: v.replace(/_/g, ' '), cls: 'neutral' };
}

export function VerdictBadge(props: { verdict: Verdict; detail?: boolean }): ReactNode {
  const v = props.verdict;
  const w = verdictWords(v.verdict);
  const title = `${v.ruleId}${v.source ? ` (${v.source})` : ' (no longer in the rules file)'}: ${w.label}. ${v.summary}${v.treatment ? ` Flag on: ${counts(v.treatment)}.` : ''}${v.control ? ` Flag off: ${counts(v.control)}.` : ''}${v.threshold !== null && v.threshold !== undefined ? ` Threshold ${pct(v.threshold)}.` : ''}`;
  return (
    <span className={`badge verdict ${w.cls}`} title={title}>
      <span aria-hidden="true">{w.icon}</span> <span className="verdict-rule">{v.ruleId}</span>: {w.label}
      {props.detail && <span className="visually-hidden"> {v.summary}</span>}
    </span>
  );
}
