/** Guardian: sources (healthy or blind since when), the last cycle, rules loaded, dry-run. */
import { useCallback, useEffect, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiError } from '../api/client.ts';
import type { GuardianStatus } from '../api/types.ts';
import { VerdictBadge } from '../components/Badges.tsx';
import { ErrorNotice } from '../components/Notice.tsx';
import { ago, when } from '../format.ts';
import { useLiveMessages } from '../live.tsx';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';

export function GuardianPage(): ReactNode {
  const { api } = useSession();
  const [status, setStatus] = useState<GuardianStatus | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setStatus(await api.status());
      setError(null);
    } catch (err) {
      setError(err instanceof ApiError ? err.describe() : (err as Error).message);
    }
  }, [api]);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 10_000);
    return () => clearInterval(t);
  }, [load]);
  useLiveMessages((m) => {
    if (m.type !== 'flag') void load();
  });

  return (
    <section aria-labelledby="g-title">
      <div className="page-head">
        <h1 id="g-title">Guardian</h1>
        <button type="button" onClick={() => void load()}>Refresh</button>
      </div>
      {error && <ErrorNotice title="Could not load the guardian's status">{error}</ErrorNotice>}
      {status && (
        <>
          <div className="grid three">
            <div className="card stat">
              <h2>Last cycle</h2>
              {status.lastCycle ? (
                <p>
                  <span className={`badge ${status.lastCycle.ok ? 'ok' : 'bad'}`}>
                    <span aria-hidden="true">{status.lastCycle.ok ? '✓' : '✕'}</span> {status.lastCycle.ok ? 'Completed' : 'Failed'}
                  </span>{' '}
                  {ago(status.lastCycle.at)} <span className="muted small">({when(status.lastCycle.at)}, took {status.lastCycle.durationMs} ms)</span>
                </p>
              ) : (
                <p className="muted">No cycle has run yet.</p>
              )}
              <p className="small muted">Runs every {Math.round(status.intervalMs / 1000)} s.</p>
            </div>
            <div className="card stat">
              <h2>Mode</h2>
              <p>
                {status.dryRun ? (
                  <span className="badge warn"><span aria-hidden="true">!</span> Dry run: decides and reports, changes nothing</span>
                ) : (
                  <span className="badge ok"><span aria-hidden="true">✓</span> Active: rolls flags back on a breach</span>
                )}
              </p>
            </div>
            <div className="card stat">
              <h2>Rules</h2>
              <p>
                <strong>{status.rules.count}</strong> rule{status.rules.count === 1 ? '' : 's'} from <code>{status.rules.file}</code>
                {status.rules.loadedAt ? <span className="muted small">, loaded {ago(status.rules.loadedAt)}</span> : null}
              </p>
              {status.rules.lastReloadError ? (
                <ErrorNotice title="Last reload refused (the previous rules still run)">{status.rules.lastReloadError}</ErrorNotice>
              ) : (
                <p className="small muted"><span aria-hidden="true">✓ </span>No reload error.</p>
              )}
            </div>
          </div>
          <div className="card">
            <h2>Sources</h2>
            <table>
              <caption className="visually-hidden">Metric sources and their health</caption>
              <thead>
                <tr>
                  <th scope="col">Source</th>
                  <th scope="col">Health</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {status.sources.map((s) => (
                  <tr key={s.id}>
                    <td data-label="Source"><strong>{s.id}</strong></td>
                    <td data-label="Health">
                      {!s.configured ? (
                        <span className="badge neutral"><span aria-hidden="true">–</span> Not configured</span>
                      ) : s.healthy ? (
                        <span className="badge ok"><span aria-hidden="true">✓</span> Healthy</span>
                      ) : (
                        <span className="badge bad"><span aria-hidden="true">✕</span> Blind{s.blindSince ? ` since ${when(s.blindSince)}` : ''}</span>
                      )}
                    </td>
                    <td data-label="Detail">{s.detail}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="card">
            <h2>Rules and their last verdicts</h2>
            {status.rules.ids.length === 0 && <p className="muted">No rules loaded.</p>}
            <ul className="plain rule-list">
              {status.rules.ids.map((id) => {
                const vs = status.verdicts.filter((v) => v.ruleId === id);
                return (
                  <li key={id}>
                    <strong>{id}</strong>
                    {vs.length === 0 ? (
                      <span className="muted small"> · no verdict yet</span>
                    ) : (
                      <ul className="plain verdicts">
                        {vs.map((v) => (
                          <li key={`${v.flag ?? ''}:${v.source}`}>
                            {v.flag ? <Link to={`/flags/${encodeURIComponent(v.flag)}`} className="flag-name">{v.flag}</Link> : null} <VerdictBadge verdict={v} /> <span className="small muted">{v.summary} · {ago(v.at)}</span>
                          </li>
                        ))}
                      </ul>
                    )}
                  </li>
                );
              })}
            </ul>
          </div>
        </>
      )}
    </section>
  );
}
