/**
 * "What does user X get": the SDK itself (server mode, `useFeatureFlag`) evaluates every flag for
 * one user id, fed by the admin API and kept live by the change stream, exactly as an app would.
 */
import { useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import { createServerClient } from '@rollback-guardian/sdk';
import type { ServerFlagClient } from '@rollback-guardian/sdk';
import { FlagsProvider, useFeatureFlag } from '@rollback-guardian/sdk/react';
import { adminApiTransport } from '../api/flagTransport.ts';
import { useLiveHub } from '../live.tsx';
import { Link, navigate, useLocation } from '../router.tsx';
import { useSession } from '../session.tsx';

function FlagValue(props: { name: string }): ReactNode {
  const on = useFeatureFlag(props.name);
  return (
    <li className="preview-row" data-preview-flag={props.name} data-value={on ? 'on' : 'off'}>
      <Link to={`/flags/${encodeURIComponent(props.name)}`} className="flag-name">{props.name}</Link>
      <span className={`badge ${on ? 'on' : 'off'}`}>
        <span aria-hidden="true">{on ? '●' : '○'}</span> {on ? 'On' : 'Off'}
      </span>
    </li>
  );
}

export function PreviewPage(): ReactNode {
  const { api } = useSession();
  const hub = useLiveHub();
  const { query } = useLocation();
  const userId = query.get('user') ?? '';
  const [draft, setDraft] = useState(userId);
  const [client, setClient] = useState<ServerFlagClient | null>(null);
  const [names, setNames] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (userId === '') return;
    const c = createServerClient({ transport: adminApiTransport(api, hub, userId), pollIntervalMs: 30_000 });
    setClient(c);
    setError(null);
    c.ready(10_000).then(
      () => setNames(c.flagNames().slice().sort()),
      (err: unknown) => setError(`The SDK could not load the flags: ${(err as Error).message}`),
    );
    const off = c.subscribe(() => setNames(c.flagNames().slice().sort()));
    return () => {
      off();
      void c.close();
    };
  }, [api, hub, userId]);

  const list = useMemo(() => names.map((n) => <FlagValue key={n} name={n} />), [names]);

  return (
    <section aria-labelledby="pv-title">
      <div className="page-head">
        <h1 id="pv-title">What does a user get?</h1>
      </div>
      <p className="muted">Evaluated in this page by the SDK (the same code your apps run), live from the change stream.</p>
      <form className="toolbar" onSubmit={(e) => { e.preventDefault(); navigate(`/preview?user=${encodeURIComponent(draft.trim())}`, { replace: true }); }}>
        <div className="field grow">
          <label htmlFor="pv-user">User id</label>
          <input id="pv-user" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="e.g. user-42" />
        </div>
        <div className="field actions">
          <button type="submit" className="primary">Evaluate</button>
        </div>
      </form>
      {error && <p role="alert" className="notice error">{error}</p>}
      {userId !== '' && client && (
        <FlagsProvider client={client} userId={userId}>
          <h2 className="small">Flags for <code className="user-id">{userId}</code></h2>
          <ul className="plain preview">{list}</ul>
        </FlagsProvider>
      )}
    </section>
  );
}
