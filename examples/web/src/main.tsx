import { createClient } from '@supabase/supabase-js';
import { createBrowserClient } from '@rollback-guardian/sdk';
import { supabaseTransport } from '@rollback-guardian/sdk/supabase';
import { useEffect } from 'react';
import { hydrateRoot } from 'react-dom/client';
import { App } from './App.tsx';
import type { AppConfig } from './config.ts';

const config = JSON.parse(document.getElementById('app-config')!.textContent!) as AppConfig;
const supabase = createClient(config.supabaseUrl, config.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
if (config.session) await supabase.auth.setSession(config.session);

// Client mode: this user's flags from get_my_flags(), live over Realtime, last-known values in localStorage.
const flags = createBrowserClient({ transport: supabaseTransport(supabase), storage: window.localStorage });

// Hydrates the server's markup: until the client has loaded, the hooks read the same snapshot the
// server rendered with, so there is no mismatch and no flicker.
// window.hydrationErrors appears once hydration has committed and every effect below it has run
// (a parent's effects run after its children's), so the rollback notice is listening by then.
const recoverable: string[] = [];
function Root() {
  useEffect(() => {
    (window as unknown as { hydrationErrors: string[] }).hydrationErrors = recoverable;
  }, []);
  return <App client={flags} snapshot={config.snapshot} />;
}
hydrateRoot(document.getElementById('root')!, <Root />, {
  onRecoverableError: (error) => recoverable.push(String(error)),
});
