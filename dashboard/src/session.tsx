/**
 * Who is signed in: the admin token (the embedded default) or a Supabase Auth session
 * (supabase-js, loaded only when SUPABASE_URL and the anon key are configured). The role the API
 * reports (`GET /me`) decides which controls are enabled.
 */
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { FormEvent, ReactNode } from 'react';
import type { SupabaseClient } from '@supabase/supabase-js';
import { AdminApi, ApiError } from './api/client.ts';
import type { DashboardConfig, Me, Role } from './api/types.ts';
import { ErrorNotice } from './components/Notice.tsx';

export interface Session {
  readonly api: AdminApi;
  readonly me: Me;
  readonly config: DashboardConfig;
  signOut(): void;
}

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (s === null) throw new Error('useSession outside a signed-in page');
  return s;
}

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

/**
 * Whether the signed-in person may do something needing `role`, and if not, why (shown beside
 * the disabled control).
 */
export function useCan(role: Role): { allowed: boolean; reason: string } {
  const { me } = useSession();
  const allowed = RANK[me.role] >= RANK[role];
  return { allowed, reason: allowed ? '' : `Needs the ${role} role; you are signed in as ${me.role} (${me.actor}). Ask an admin to change your role.` };
}

const TOKEN_KEY = 'rollback-guardian.admin-token';
/** Where supabase-js keeps the session (localStorage), named so the gate can tell a lost session from none. */
const SUPABASE_STORAGE_KEY = 'rollback-guardian.supabase-auth';

async function loadSupabase(config: DashboardConfig): Promise<SupabaseClient | null> {
  if (!config.supabaseUrl || !config.supabaseAnonKey) return null;
  const { createClient } = await import('@supabase/supabase-js');
  return createClient(config.supabaseUrl, config.supabaseAnonKey, { auth: { persistSession: true, detectSessionInUrl: true, storageKey: SUPABASE_STORAGE_KEY } });
}

/** The error Supabase Auth put in the URL fragment of a failed sign-in link, if any. */
function linkError(): string | null {
  const hash = window.location.hash.startsWith('#') ? new URLSearchParams(window.location.hash.slice(1)) : null;
  const description = hash?.get('error_description') ?? null;
  return description === null ? null : `The sign-in link did not work: ${description}. Ask for a new link.`;
}

/** "Your session has ended: <why>" in one clean sentence (without the API's how-to-send-a-token tail). */
function ended(why: string): string {
  const w = why.replace(/\s*Send "Authorization.*$/, '').trim();
  return `${SESSION_ENDED}: ${w}${/sign in again/i.test(w) ? '' : ' Sign in again.'}`;
}
const SESSION_ENDED = 'Your session has ended';
const RENEW_FAILED = 'it expired and Supabase Auth could not renew it (or you were signed out elsewhere).';

function hadStoredSupabaseSession(): boolean {
  try {
    return localStorage.getItem(SUPABASE_STORAGE_KEY) !== null;
  } catch {
    return false;
  }
}

export function SessionGate(props: { config: DashboardConfig; children: ReactNode }): ReactNode {
  const { config } = props;
  const [supabase, setSupabase] = useState<SupabaseClient | null | undefined>(config.supabaseUrl ? undefined : null);
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(true);
  const [error, setError] = useState<string | null>(null);
  // Read before supabase-js starts: it consumes the URL fragment and drops a session it cannot refresh.
  const [startup] = useState(() => ({ linkError: linkError(), hadSession: hadStoredSupabaseSession() }));
  // True while the person signs out: the SIGNED_OUT that follows is theirs, not an expiry.
  const signingOut = useRef(false);

  useEffect(() => {
    if (!config.supabaseUrl) return;
    loadSupabase(config).then(setSupabase, (err: unknown) => {
      setError(`Supabase sign-in is unavailable: ${(err as Error).message}`);
      setSupabase(null);
    });
  }, [config]);

  /** Back to the sign-in form with the reason, when the guardian or Supabase ends the session. */
  const expire = useCallback((why: string, end: () => void) => {
    setSession((s) => {
      // Only a session that was working ends here; a refused sign-in is told by start().
      if (s === null) return s;
      end();
      setError(ended(why));
      return null;
    });
  }, []);

  /** `end` forgets the session here; `leave` (the person's sign-out) also ends it at the provider. */
  async function start(api: AdminApi, end: () => void, leave: () => void = end, resumed = false): Promise<boolean> {
    try {
      const me = await api.me();
      setSession({
        api,
        me,
        config,
        signOut: () => {
          signingOut.current = true;
          leave();
          setSession(null);
          setError(null);
        },
      });
      setError(null);
      return true;
    } catch (err) {
      end();
      // A stored session the guardian now refuses has ended (expired, revoked); anything else failed to sign in.
      if (resumed && err instanceof ApiError && err.status === 401) setError(ended(err.message));
      else setError(err instanceof ApiError ? err.describe() : (err as Error).message);
      return false;
    }
  }

  const tokenApi = (token: string) => {
    const end = () => sessionStorage.removeItem(TOKEN_KEY);
    return { api: new AdminApi(config.apiBase, async () => token, { onUnauthorized: (e) => expire(e.message, end) }), end };
  };
  const supabaseApi = (sb: SupabaseClient) => {
    const end = () => void sb.auth.signOut({ scope: 'local' });
    // No token at all means supabase-js dropped the session (its refresh was refused): say that,
    // not the guardian's "no credentials".
    let lost = false;
    const token = async () => {
      const t = (await sb.auth.getSession()).data.session?.access_token ?? null;
      lost = t === null;
      return t;
    };
    const api = new AdminApi(config.apiBase, token, { onUnauthorized: (e) => expire(lost ? RENEW_FAILED : e.message, end) });
    return { api, end, leave: () => void sb.auth.signOut() };
  };

  // Supabase ended the session by itself (its refresh token was refused or revoked): say so.
  useEffect(() => {
    if (!supabase) return;
    const { data } = supabase.auth.onAuthStateChange((event) => {
      if (event !== 'SIGNED_OUT') return;
      if (signingOut.current) {
        signingOut.current = false;
        return;
      }
      setSession((s) => {
        if (s && s.me.via === 'supabase') setError(ended(RENEW_FAILED));
        return s && s.me.via === 'supabase' ? null : s;
      });
    });
    return () => data.subscription.unsubscribe();
  }, [supabase]);

  // Resume a stored session on load.
  useEffect(() => {
    if (supabase === undefined) return;
    let cancelled = false;
    void (async () => {
      const stored = sessionStorage.getItem(TOKEN_KEY);
      if (stored) {
        const { api, end } = tokenApi(stored);
        await start(api, end, end, true);
      } else if (supabase) {
        const { data, error: sessionError } = await supabase.auth.getSession();
        if (cancelled) return;
        if (data.session) {
          const { api, end, leave } = supabaseApi(supabase);
          await start(api, end, leave, true);
        } else if (startup.linkError) setError(startup.linkError);
        else if (sessionError) setError(ended(`${sessionError.message}.`));
        else if (startup.hadSession) setError(ended(RENEW_FAILED));
      }
      if (!cancelled) setChecking(false);
    })();
    return () => {
      cancelled = true;
    };
  }, [supabase]);

  if (session) return <SessionContext.Provider value={session}>{props.children}</SessionContext.Provider>;
  if (checking && supabase !== null) {
    return <main className="signin" aria-busy="true"><p>Checking your session…</p></main>;
  }
  return (
    <SignIn
      supabase={supabase ?? null}
      error={error}
      onToken={async (token) => {
        sessionStorage.setItem(TOKEN_KEY, token);
        const { api, end } = tokenApi(token);
        return start(api, end);
      }}
      onSupabase={async () => {
        if (!supabase) return false;
        const { api, end, leave } = supabaseApi(supabase);
        return start(api, end, leave);
      }}
      setError={setError}
    />
  );
}

function SignIn(props: {
  supabase: SupabaseClient | null;
  error: string | null;
  onToken(token: string): Promise<boolean>;
  onSupabase(): Promise<boolean>;
  setError(e: string | null): void;
}): ReactNode {
  const [token, setToken] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState<string | null>(null);
  // User Timing marks: the load benchmark (bench/dashboard-load.bench.ts) reads them.
  useEffect(() => void performance.mark('guardian:signin-shown'), []);

  async function submitToken(e: FormEvent): Promise<void> {
    e.preventDefault();
    if (token.trim() === '') {
      props.setError('Enter the admin token (GUARDIAN_ADMIN_TOKEN) the guardian was started with.');
      return;
    }
    setBusy(true);
    await props.onToken(token.trim());
    setBusy(false);
  }

  async function submitEmail(e: FormEvent, magic: boolean): Promise<void> {
    e.preventDefault();
    const sb = props.supabase;
    if (!sb) return;
    if (email.trim() === '') {
      props.setError('Enter your email address.');
      return;
    }
    setBusy(true);
    if (magic) {
      const { error } = await sb.auth.signInWithOtp({ email: email.trim(), options: { emailRedirectTo: window.location.href, shouldCreateUser: false } });
      if (error) props.setError(`Could not send the sign-in link: ${error.message}`);
      else setSent(email.trim());
    } else {
      const { error } = await sb.auth.signInWithPassword({ email: email.trim(), password });
      if (error) props.setError(`Could not sign in: ${error.message}`);
      else await props.onSupabase();
    }
    setBusy(false);
  }

  return (
    <main className="signin">
      <div className="signin-card">
        <h1>
          <span className="logo" aria-hidden="true">⟲</span> Rollback Guardian
        </h1>
        <p className="muted">Sign in to manage flags, rollouts and rollbacks.</p>
        {props.error && <ErrorNotice {...(props.error.startsWith(SESSION_ENDED) || props.error.startsWith('The sign-in link') ? {} : { title: 'Sign-in failed' })}>{props.error}</ErrorNotice>}
        {props.supabase && (
          <form onSubmit={(e) => void submitEmail(e, false)} aria-labelledby="signin-email-title">
            <h2 id="signin-email-title">With your account</h2>
            <label htmlFor="signin-email">Email</label>
            <input id="signin-email" type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />
            <label htmlFor="signin-password">Password</label>
            <input id="signin-password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
            <div className="row">
              <button type="submit" className="primary" disabled={busy}>Sign in</button>
              <button type="button" disabled={busy} onClick={(e) => void submitEmail(e, true)}>Email me a sign-in link</button>
            </div>
            {sent && <p role="status">A sign-in link is on its way to {sent}. Open it in this browser.</p>}
          </form>
        )}
        <form onSubmit={(e) => void submitToken(e)} aria-labelledby="signin-token-title">
          <h2 id="signin-token-title">{props.supabase ? 'Or with the admin token' : 'With the admin token'}</h2>
          <label htmlFor="signin-token">Admin token</label>
          <input id="signin-token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} aria-describedby="signin-token-help" />
          <p id="signin-token-help" className="help">
            The value of <code>GUARDIAN_ADMIN_TOKEN</code> the guardian runs with.
          </p>
          <button type="submit" className="primary" disabled={busy}>Sign in</button>
        </form>
      </div>
    </main>
  );
}
