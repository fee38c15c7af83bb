/** Entry: learn the sign-in options from /admin/config.json, then sign in and show the app. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import type { DashboardConfig } from './api/types.ts';
import { App, loadFlagsPage } from './App.tsx';
import { SessionGate } from './session.tsx';
import './styles.css';

const fallback: DashboardConfig = { apiBase: '/api/v1', supabaseUrl: null, supabaseAnonKey: null };

function parse(c: Partial<DashboardConfig>): DashboardConfig {
  return { apiBase: typeof c.apiBase === 'string' ? c.apiBase : fallback.apiBase, supabaseUrl: c.supabaseUrl ?? null, supabaseAnonKey: c.supabaseAnonKey ?? null };
}

/** The guardian writes the config into the page (<meta name="guardian-config">); config.json otherwise. */
async function config(): Promise<DashboardConfig> {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="guardian-config"]')?.content;
  if (meta) {
    try {
      return parse(JSON.parse(meta) as Partial<DashboardConfig>);
    } catch {
      // fall through to config.json
    }
  }
  try {
    const res = await fetch(`${import.meta.env.BASE_URL}config.json`, { cache: 'no-store' });
    if (!res.ok) return fallback;
    return parse((await res.json()) as Partial<DashboardConfig>);
  } catch {
    return fallback;
  }
}

const root = createRoot(document.getElementById('root')!);
void config().then((c) =>
  root.render(
    <StrictMode>
      <SessionGate config={c}>
        <App />
      </SessionGate>
    </StrictMode>,
  ),
);
// Fetch the first page's code while the sign-in form is shown.
setTimeout(() => void loadFlagsPage(), 0);
