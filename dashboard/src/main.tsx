/** Entry: learn the sign-in options from /admin/config.json, then sign in and show the app. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import type { DashboardConfig } from './api/types.ts';
import { App } from './App.tsx';
import { SessionGate } from './session.tsx';
import './styles.css';

async function config(): Promise<DashboardConfig> {
  const fallback: DashboardConfig = { apiBase: '/api/v1', supabaseUrl: null, supabaseAnonKey: null };
  try {
    const res = await fetch(`${import.meta.env.BASE_URL}config.json`, { cache: 'no-store' });
    if (!res.ok) return fallback;
    const c = (await res.json()) as Partial<DashboardConfig>;
    return { apiBase: typeof c.apiBase === 'string' ? c.apiBase : fallback.apiBase, supabaseUrl: c.supabaseUrl ?? null, supabaseAnonKey: c.supabaseAnonKey ?? null };
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
