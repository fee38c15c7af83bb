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

export function describeChange(c: AuditChange): string[] {
  if (c.op === 'INSERT') return ['created'];
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
            {changes.map((c) => (
              <tr key={c.id}>
                <td data-label="When">{when(c.at)}</td>
                <td data-label="Who">{c.actor ?? 'unknown'}</td>
                <td data-label="What">
                  <ul className="plain">
                    {describeChange(c).map((d) => (
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
