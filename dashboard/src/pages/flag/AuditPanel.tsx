/** Who changed the flag, when, and what (old → new), newest first. */
import { useCallback, useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../../api/client.ts';
import type { AuditChange, Flag } from '../../api/types.ts';
import { ErrorNotice } from '../../components/Notice.tsx';
import { when } from '../../format.ts';
import { useSession } from '../../session.tsx';

function show(v: unknown): string {
  if (v === null || v === undefined) return '(none)';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const IGNORED = new Set(['version', 'updated_at', 'updated_by']);

function targetId(v: Readonly<Record<string, unknown>> | null): string {
  const id = v?.['user_id'];
  return typeof id === 'string' ? id : '?';
}

/** Consecutive target additions (or removals) by one person at one time are one row. */
export interface AuditRow {
  readonly key: string;
  readonly at: string;
  readonly actor: string | null;
  readonly what: string[];
}

export function auditRows(changes: readonly AuditChange[]): AuditRow[] {
  const rows: (AuditRow & { op: string; ids: string[] })[] = [];
  for (const c of changes) {
    if (c.op === 'TARGET_ADD' || c.op === 'TARGET_REMOVE') {
      const id = targetId(c.op === 'TARGET_ADD' ? c.new : c.old);
      const last = rows.at(-1);
      if (last && last.op === c.op && last.actor === c.actor && last.at.slice(0, 19) === c.at.slice(0, 19)) {
        last.ids.push(id);
        continue;
      }
      rows.push({ key: c.id, at: c.at, actor: c.actor, op: c.op, ids: [id], what: [] });
      continue;
    }
    rows.push({ key: c.id, at: c.at, actor: c.actor, op: c.op, ids: [], what: describeChange(c) });
  }
  return rows.map((r) => {
    if (r.op !== 'TARGET_ADD' && r.op !== 'TARGET_REMOVE') return r;
    const verb = r.op === 'TARGET_ADD' ? 'added' : 'removed';
    const shown = r.ids.slice(0, 3).join(', ');
    return { ...r, what: [r.ids.length === 1 ? `target ${verb}: ${shown}` : `${r.ids.length.toLocaleString('en-US')} targets ${verb}: ${shown}${r.ids.length > 3 ? ', …' : ''}`] };
  });
}

export function describeChange(c: AuditChange): string[] {
  if (c.op === 'INSERT') return ['created'];
  if (c.op === 'TARGET_ADD') return [`target added: ${targetId(c.new)}`];
  if (c.op === 'TARGET_REMOVE') return [`target removed: ${targetId(c.old)}`];
  if (c.op === 'DELETE') return ['deleted'];
  const fields = c.fields.filter((f) => !IGNORED.has(f));
  if (fields.length === 0) return c.fields.includes('version') ? ['targets changed'] : ['touched'];
  return fields.map((f) => `${f.replace(/_/g, ' ')}: ${show(c.old?.[f])} → ${show(c.new?.[f])}`);
}

export function AuditPanel(props: { flag: Flag; revision: number }): ReactNode {
  const { api } = useSession();
  const [changes, setChanges] = useState<AuditChange[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const name = props.flag.name;

  const load = useCallback(
    async (cursor: string | null) => {
      try {
        const r = await api.audit(name, cursor);
        setChanges((old) => (cursor && old ? [...old, ...r.changes] : r.changes));
        setNext(r.nextCursor);
        setError(null);
      } catch (err) {
        setError(err instanceof ApiError ? err.describe() : (err as Error).message);
      }
    },
    [api, name],
  );
  useEffect(() => void load(null), [load, props.revision]);

  return (
    <div className="card" aria-labelledby="audit-title">
      <h2 id="audit-title">History</h2>
      {error && <ErrorNotice title="Could not load the history">{error}</ErrorNotice>}
      {changes && changes.length === 0 && <p className="muted">No changes recorded.</p>}
      {changes && changes.length > 0 && (
        <table className="audit">
          <caption className="visually-hidden">Changes to {name}, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
            </tr>
          </thead>
          <tbody>
            {auditRows(changes).map((c) => (
              <tr key={c.key}>
                <td data-label="When">{when(c.at)}</td>
                <td data-label="Who">{c.actor ?? 'unknown'}</td>
                <td data-label="What">
                  <ul className="plain">
                    {c.what.map((d) => (
                      <li key={d}>{d}</li>
                    ))}
                  </ul>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <button type="button" onClick={() => void load(next)}>
          Older changes
        </button>
      )}
    </div>
  );
}
