/** The signed-in shell: header with navigation, live status and the person's role, then the page. */
import type { ReactNode } from 'react';
import { LiveProvider, useStreamStatus } from './live.tsx';
import { FlagPage } from './pages/FlagPage.tsx';
import { FlagsPage } from './pages/FlagsPage.tsx';
import { GuardianPage } from './pages/GuardianPage.tsx';
import { PreviewPage } from './pages/PreviewPage.tsx';
import { RollbacksPage } from './pages/RollbacksPage.tsx';
import { Link, useLocation } from './router.tsx';
import { Icon } from './components/Icon.tsx';
import { useSession } from './session.tsx';

function LiveStatus(): ReactNode {
  const { status, detail } = useStreamStatus();
  const words = status === 'live' ? 'Live' : status === 'connecting' ? 'Connecting…' : 'Offline, retrying';
  const icon = status === 'live' ? '●' : status === 'connecting' ? '◌' : '✕';
  return (
    <span className={`live live-${status}`} role="status" title={detail || undefined} data-stream={status}>
      <span aria-hidden="true">{icon}</span> {words}
    </span>
  );
}

const NAV = [
  { to: '/', label: 'Flags', match: (p: string) => p === '/' || p.startsWith('/flags') },
  { to: '/rollbacks', label: 'Rollbacks', match: (p: string) => p.startsWith('/rollbacks') },
  { to: '/guardian', label: 'Guardian', match: (p: string) => p.startsWith('/guardian') },
  { to: '/preview', label: 'User preview', match: (p: string) => p.startsWith('/preview') },
];

function Page(props: { path: string }): ReactNode {
  const { path } = props;
  const flag = /^\/flags\/([^/]+)\/?$/.exec(path);
  if (flag) return <FlagPage name={decodeURIComponent(flag[1]!)} />;
  if (path === '/' || path === '/flags' || path === '/flags/') return <FlagsPage />;
  if (path.startsWith('/rollbacks')) return <RollbacksPage />;
  if (path.startsWith('/guardian')) return <GuardianPage />;
  if (path.startsWith('/preview')) return <PreviewPage />;
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no page at {path}. <Link to="/">Go to the flags</Link>.
      </p>
    </section>
  );
}

export function App(): ReactNode {
  const { api, me, signOut } = useSession();
  const { path } = useLocation();
  return (
    <LiveProvider api={api}>
      <a href="#main" className="skip">Skip to content</a>
      <header className="top">
        <div className="brand">
          <span className="logo" aria-hidden="true">⟲</span> Rollback Guardian
        </div>
        <nav aria-label="Main">
          <ul className="plain nav">
            {NAV.map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={n.match(path) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <LiveStatus />
          <span className="me" data-role={me.role}>
            {me.actor} <span className={`badge role-${me.role}`}>{me.role}</span>
          </span>
          <button type="button" className="link" onClick={signOut}>Sign out</button>
        </div>
      </header>
      {me.role === 'viewer' && (
        <p className="banner" role="note">
          <Icon name="eye" /> You can look but not change anything: your role is viewer. Ask an admin for the editor role to make changes.
        </p>
      )}
      <main id="main" tabIndex={-1}>
        <Page path={path} />
      </main>
    </LiveProvider>
  );
}
