/**
 * A 412 from the API: someone changed the flag since the page loaded it. Shows what changed
 * (field by field, old → new) and lets the person retry their change on the new version or keep
 * the new state.
 */
import type { ReactNode } from 'react';
import type { Flag } from '../api/types.ts';

const FIELDS: readonly [keyof Flag, string][] = [
  ['enabled', 'Enabled'],
  ['rolloutPercentage', 'Rollout percentage'],
  ['guardState', 'Guard state'],
  ['rollbackMessage', 'Rollback message'],
  ['description', 'Description'],
  ['targetCount', 'Targeted users'],
];

function show(v: unknown): string {
  if (v === null || v === undefined || v === '') return '(none)';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return String(v);
}

export function flagDiff(before: Flag, after: Flag): { label: string; from: string; to: string }[] {
  const out: { label: string; from: string; to: string }[] = [];
  for (const [key, label] of FIELDS) {
    if (before[key] !== after[key] && !(before[key] === undefined && after[key] === undefined)) out.push({ label, from: show(before[key]), to: show(after[key]) });
  }
  return out;
}

export interface ConflictState {
  readonly intent: string;
  readonly before: Flag;
  readonly current: Flag;
  retry(current: Flag): void;
}

export function ConflictNotice(props: { conflict: ConflictState; onKeep(): void }): ReactNode {
  const { before, current, intent } = props.conflict;
  const diff = flagDiff(before, current);
  return (
    <div className="notice conflict" role="alert" aria-labelledby="conflict-title">
      <span className="notice-icon" aria-hidden="true">⇄</span>
      <div className="notice-body">
        <h2 id="conflict-title">Someone changed this flag while you were editing</h2>
        <p>
          Your change (<strong>{intent}</strong>) was made on version {before.version}; the flag is now at version {current.version}
          {current.updatedBy ? `, changed by ${current.updatedBy}` : ''}. Nothing of yours was saved.
        </p>
        {diff.length > 0 ? (
          <table className="diff">
            <caption className="visually-hidden">What changed meanwhile</caption>
            <thead>
              <tr>
                <th scope="col">Field</th>
                <th scope="col">You saw</th>
                <th scope="col">Now</th>
              </tr>
            </thead>
            <tbody>
              {diff.map((d) => (
                <tr key={d.label}>
                  <th scope="row">{d.label}</th>
                  <td>{d.from}</td>
                  <td>{d.to}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p>The change was to its targets or other details.</p>
        )}
        <div className="row">
          <button type="button" className="primary" onClick={() => props.conflict.retry(current)}>
            Apply my change to version {current.version}
          </button>
          <button type="button" onClick={props.onKeep}>Keep the new state</button>
        </div>
      </div>
    </div>
  );
}
