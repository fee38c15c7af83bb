import type { FlagsSnapshot } from '@rollback-guardian/sdk/react';

/** What the server embeds in the page: where Supabase is, the session, and the flags it rendered with. */
export interface AppConfig {
  readonly supabaseUrl: string;
  readonly anonKey: string;
  /** The signed-in user's session (a real app gets it from Supabase Auth). */
  readonly session: { readonly access_token: string; readonly refresh_token: string } | null;
  readonly snapshot: FlagsSnapshot;
}

/** The script tag carrying the config: JSON with `<` escaped, so no value can close the tag. */
export function configScript(config: AppConfig): string {
  return `<script id="app-config" type="application/json">${JSON.stringify(config).replaceAll('<', '\\u003c')}</script>`;
}
