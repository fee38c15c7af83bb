/** The signed-in shell: header with navigation, live status and the person's role, then the page. */
import { lazy, Suspense } from 'react';
import type { ReactNode } from 'react';
import { LiveProvider, useStreamStatus } from './live.tsx';

// Each page is its own chunk: the sign-in form needs none of them, and the Flags page is fetched
// while the person types the token (see main.tsx).
export const loadFlagsPage = () => import('./pages/FlagsPage.tsx');
const FlagsPage = lazy(() => loadFlagsPage().then((m) => ({ default: m.FlagsPage })));
const FlagPage = lazy(() => import('./pages/FlagPage.tsx').then((m) => ({ default: m.FlagPage })));
const RollbacksPage = lazy(() => import('./pages/RollbacksPage.tsx').then((m) => ({ default: m.RollbacksPage })));
const PlansPage = lazy(() => import('./pages/PlansPage.tsx').then((m) => ({ default: m.PlansPage })));
const GuardianPage = lazy(() => import('./pages/GuardianPage.tsx').then((m) => ({ default: m.GuardianPage })));
const PreviewPage = lazy(() => import('./pages/PreviewPage.tsx').then((m) => ({ default: m.PreviewPage })));
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
  { to: '/plans', label: 'Plans', match: (p: string) => p.startsWith('/plans') },
  { to: '/rollbacks', label: 'Rollbacks', match: (p: string) => p.startsWith('/rollbacks') },
  { to: '/guardian', label: 'Guardian', match: (p: string) => p.startsWith('/guardian') },
  { to: '/preview', label: 'User preview', match: (p: string) => p.startsWith('/preview') },
];

function Page(props: { path: string }): ReactNode {
  const { path } = props;
  const flag = /^\/flags\/([^/]+)\/?$/.exec(path);
  if (flag) return <FlagPage name={decodeURIComponent(flag[1]!)} />;
  if (path === '/' || path === '/flags' || path === '/flags/') return <FlagsPage />;
  if (path.startsWith('/plans')) return <PlansPage />;
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
        <Suspense fallback={<p aria-busy="true" className="muted">Loading…</p>}>
          <Page path={path} />
        </Suspense>
      </main>
    </LiveProvider>
  );
}
