/** A flag's target list: paste many ids at once, search, remove. */
import { useCallback, useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../../api/client.ts';
import type { Flag } from '../../api/types.ts';
import { DisabledReason, ErrorNotice } from '../../components/Notice.tsx';
import { num } from '../../format.ts';
import { useCan, useSession } from '../../session.tsx';
import type { FlagWriter } from '../useFlagWriter.ts';

/** Ids from pasted text: split on commas, semicolons and whitespace, trimmed, duplicates dropped. */
export function parseIds(text: string): { ids: string[]; duplicates: number } {
  const all = text.split(/[\s,;]+/).map((s) => s.trim()).filter((s) => s !== '');
  const ids = [...new Set(all)];
  return { ids, duplicates: all.length - ids.length };
}

export function TargetsPanel(props: { flag: Flag; writer: FlagWriter }): ReactNode {
  const { api } = useSession();
  const can = useCan('editor');
  const { flag, writer } = props;
  const [paste, setPaste] = useState<{ text: string; base: Flag } | null>(null);
  const [search, setSearch] = useState('');
  const [page, setPage] = useState<{ targets: string[]; total: number; nextCursor: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(
    async (cursor: string | null = null) => {
      try {
        const r = await api.targets(flag.name, { search, cursor, limit: 100 });
        setPage((p) => (cursor && p ? { ...r, targets: [...p.targets, ...r.targets] } : r));
        setError(null);
      } catch (err) {
        setError(err instanceof ApiError ? err.describe() : (err as Error).message);
      }
    },
    [api, flag.name, search],
  );
  // Reload when the search or the flag's version (targets bump it) changes.
  useEffect(() => {
    const t = setTimeout(() => void load(), 200);
    return () => clearTimeout(t);
  }, [load, flag.version]);

  const parsed = paste ? parseIds(paste.text) : { ids: [], duplicates: 0 };
  const dis = !can.allowed || writer.busy;
  const why = can.allowed ? undefined : 'targets-why';

  return (
    <div className="card" aria-labelledby="targets-title">
      <h2 id="targets-title">Targets <span className="muted small">({num(page?.total ?? flag.targetCount ?? 0)} users always get it when the flag is on)</span></h2>
      <DisabledReason id="targets-why" reason={can.reason} />
      <div className="grid two">
        <div>
          <label htmlFor="targets-paste">Add user ids</label>
          <textarea
            id="targets-paste"
            rows={5}
            placeholder="Paste ids: one per line, or separated by commas or spaces"
            value={paste?.text ?? ''}
            disabled={dis}
            aria-describedby={why ?? 'targets-paste-help'}
            onChange={(e) => setPaste({ text: e.target.value, base: paste?.base ?? flag })}
          />
          <p id="targets-paste-help" className="help">
            {parsed.ids.length > 0 ? `${num(parsed.ids.length)} id${parsed.ids.length === 1 ? '' : 's'} ready${parsed.duplicates > 0 ? ` (${num(parsed.duplicates)} duplicates dropped)` : ''}.` : 'Up to 10,000 ids at once; all are added or none.'}
          </p>
          <button
            type="button"
            className="primary"
            disabled={dis || parsed.ids.length === 0}
            onClick={() => {
              if (!paste) return;
              const ids = parsed.ids;
              void writer.write(`Add ${num(ids.length)} target${ids.length === 1 ? '' : 's'}`, paste.base, (b) => api.changeTargets(b.name, b.version, { add: ids })).then((ok) => {
                if (ok) setPaste(null);
              });
            }}
          >
            Add {parsed.ids.length > 0 ? num(parsed.ids.length) : ''} id{parsed.ids.length === 1 ? '' : 's'}
          </button>
        </div>
        <div>
          <label htmlFor="targets-search">Search targets</label>
          <input id="targets-search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="User id" />
          {error && <ErrorNotice title="Could not load the targets">{error}</ErrorNotice>}
          {page && page.targets.length === 0 && <p className="muted small">{search ? 'No target matches.' : 'No targets.'}</p>}
          {page && page.targets.length > 0 && (
            <ul className="plain target-list" aria-label="Targeted user ids">
              {page.targets.map((id) => (
                <li key={id}>
                  <code className="user-id">{id}</code>
                  <button
                    type="button"
                    className="small-btn"
                    disabled={dis}
                    aria-label={`Remove ${id}`}
                    aria-describedby={why}
                    onClick={() => void writer.write(`Remove ${id}`, flag, (b) => api.changeTargets(b.name, b.version, { remove: [id] }))}
                  >
                    Remove
                  </button>
                </li>
              ))}
            </ul>
          )}
          {page?.nextCursor && (
            <button type="button" onClick={() => void load(page.nextCursor)}>
              Show more ({num(page.total - page.targets.length)} left)
            </button>
          )}
        </div>
      </div>
    </div>
  );
}
