/**
 * Flags: every flag with its state, guard state, the last verdict of each rule watching it and a
 * small on/off error-rate chart; search and filter; live from the change stream.
 */
import { useCallback, useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../api/client.ts';
import type { Flag } from '../api/types.ts';
import { GuardBadge, OnOffBadge, VerdictBadge } from '../components/Badges.tsx';
import { ErrorRateSpark } from '../components/ErrorRateSpark.tsx';
import { ErrorNotice, InfoNotice } from '../components/Notice.tsx';
import { ago, num } from '../format.ts';
import { useLiveMessages } from '../live.tsx';
import { Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';
import { CreateFlag } from './flags/CreateFlag.tsx';

const STATES = [
  { value: '', label: 'All flags' },
  { value: 'on', label: 'On' },
  { value: 'off', label: 'Off' },
  { value: 'watching', label: 'Watching' },
  { value: 'rolled_back', label: 'Rolled back' },
  { value: 'locked', label: 'Locked' },
];

export function matches(f: Flag, search: string, state: string): boolean {
  const s = search.trim().toLowerCase();
  if (s !== '' && !f.name.toLowerCase().includes(s) && !(f.description ?? '').toLowerCase().includes(s)) return false;
  if (state === 'on') return f.enabled;
  if (state === 'off') return !f.enabled;
  if (state !== '') return f.guardState === state;
  return true;
}

export function FlagsPage(): ReactNode {
  const { api } = useSession();
  const { query } = useLocation();
  const search = query.get('search') ?? '';
  const state = query.get('state') ?? '';
  const deleted = query.get('deleted');
  const [created, setCreated] = useState<string | null>(null);
  const [flags, setFlags] = useState<Flag[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [touched, setTouched] = useState<Record<string, number>>({});
  const [sparkKey, setSparkKey] = useState<Record<string, number>>({});

  const load = useCallback(async () => {
    try {
      setFlags(await api.flags());
      setError(null);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : (err as Error).message);
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  const refreshOne = useCallback(
    async (name: string) => {
      try {
        const f = await api.flag(name);
        setFlags((list) => (list ? (list.some((x) => x.name === name) ? list.map((x) => (x.name === name && f.version >= x.version ? f : x)) : [...list, f].sort((a, b) => a.name.localeCompare(b.name))) : list));
      } catch {
        // The next reset or reload brings it; the stream already showed the public fields.
      }
    },
    [api],
  );

  useLiveMessages((m) => {
    if (m.type === 'reset') {
      void load();
      return;
    }
    const name = m.type === 'flag' ? m.data.name : m.data.flag;
    setTouched((t) => ({ ...t, [name]: Date.now() }));
    if (m.type === 'flag') {
      const d = m.data;
      setFlags((list) => {
        if (!list) return list;
        if (d.deleted) return list.filter((f) => f.name !== d.name);
        const old = list.find((f) => f.name === d.name);
        if (!old) {
          void refreshOne(d.name);
          return list;
        }
        if (d.version <= old.version) return list;
        return list.map((f) => (f.name === d.name ? { ...f, ...d, description: d.description ?? f.description, updatedBy: d.updatedBy ?? f.updatedBy, updatedAt: d.updatedAt ?? f.updatedAt } : f));
      });
      // Verdicts, exposures and the last rollback are not in the stream event: fetch them.
      void refreshOne(d.name);
    } else {
      void refreshOne(name);
      setSparkKey((k) => ({ ...k, [name]: (k[name] ?? 0) + 1 }));
    }
  });

  useEffect(() => {
    if (flags) performance.mark('guardian:flags-shown');
  }, [flags]);

  const shown = useMemo(() => (flags ?? []).filter((f) => matches(f, search, state)), [flags, search, state]);

  function setQuery(next: { search?: string; state?: string }): void {
    const q = new URLSearchParams();
    const s = next.search ?? search;
    const st = next.state ?? state;
    if (s) q.set('search', s);
    if (st) q.set('state', st);
    const qs = q.toString();
    navigate(qs ? `/?${qs}` : '/', { replace: true });
  }

  return (
    <section aria-labelledby="flags-title">
      <div className="page-head">
        <h1 id="flags-title">Flags</h1>
        <p className="muted">{flags ? `${shown.length} of ${flags.length} flags` : 'Loading flags…'}</p>
      </div>
      {deleted && <InfoNotice kind="success" onDismiss={() => navigate('/', { replace: true })}>Deleted {deleted}.</InfoNotice>}
      {created && (
        <InfoNotice kind="success" onDismiss={() => setCreated(null)}>
          Created <Link to={`/flags/${encodeURIComponent(created)}`} className="flag-name">{created}</Link> (off, 0%).
        </InfoNotice>
      )}
      <CreateFlag
        onCreated={(f) => {
          setCreated(f.name);
          setFlags((list) => (list && !list.some((x) => x.name === f.name) ? [...list, f].sort((a, b) => a.name.localeCompare(b.name)) : list));
        }}
      />
      <div className="toolbar" role="search">
        <div className="field grow">
          <label htmlFor="flag-search">Search flags</label>
          <input id="flag-search" type="search" placeholder="Name or description" value={search} onChange={(e) => setQuery({ search: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor="flag-state">State</label>
          <select id="flag-state" value={state} onChange={(e) => setQuery({ state: e.target.value })}>
            {STATES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
      </div>
      {error && <ErrorNotice title="Could not load the flags">{error}</ErrorNotice>}
      {flags && shown.length === 0 && <p className="empty">No flag matches this search.</p>}
      {shown.length > 0 && (
        <table className="flags-table">
          <caption className="visually-hidden">Flags with state, guard state, rule verdicts and error rates</caption>
          <thead>
            <tr>
              <th scope="col">Flag</th>
              <th scope="col">State</th>
              <th scope="col">Guard</th>
              <th scope="col">Rules (last verdict)</th>
              <th scope="col">Error rate, 24 h</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((f) => (
              <tr key={f.name} data-flag={f.name} className={touched[f.name] && Date.now() - touched[f.name]! < 4000 ? 'flash' : undefined}>
                <td data-label="Flag">
                  <Link to={`/flags/${encodeURIComponent(f.name)}`} className="flag-name">
                    {f.name}
                  </Link>
                  {f.description ? <div className="muted small description">{f.description}</div> : null}
                  {f.bucketGroup ? <div className="muted small">group {f.bucketGroup}</div> : null}
                </td>
                <td data-label="State">
                  <OnOffBadge enabled={f.enabled} percentage={f.rolloutPercentage} />
                  {(f.targetCount ?? 0) > 0 && <div className="muted small">+ {num(f.targetCount)} targeted</div>}
                </td>
                <td data-label="Guard">
                  <GuardBadge state={f.guardState} />
                </td>
                <td data-label="Rules">
                  {f.verdicts && f.verdicts.length > 0 ? (
                    <ul className="plain verdicts">
                      {f.verdicts.map((v) => (
                        <li key={`${v.ruleId}:${v.source}`}>
                          <VerdictBadge verdict={v} />
                        </li>
                      ))}
                    </ul>
                  ) : (
                    <span className="muted small">No rule watches it</span>
                  )}
                </td>
                <td data-label="Error rate">
                  <ErrorRateSpark flag={f.name} refreshKey={sparkKey[f.name] ?? 0} />
                </td>
                <td data-label="Updated">
                  <span title={f.updatedAt}>{ago(f.updatedAt)}</span>
                  {f.updatedBy && <div className="muted small">by {f.updatedBy}</div>}
                  <div className="muted small">v{f.version}</div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
