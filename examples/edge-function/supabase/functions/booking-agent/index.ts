// Supabase Edge Function `booking-agent` (Deno): runs the AI booking agent for users who have
// `booking_agent_enabled`, the classic flow for everyone else. One flag client per isolate (module
// level): definitions are loaded once and every request evaluates locally; with `realtime: true` a
// rollback reaches the isolate in about a second instead of at the next TTL.
//
// Deploy: `supabase functions deploy booking-agent`. SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are
// set by Supabase for every function. The user id comes from the verified JWT (here the `sub` of
// the Authorization header, which Supabase's gateway verifies before the function runs).
import { createClient } from 'npm:@supabase/supabase-js@2';
import { createEdgeFlags } from 'npm:@rollback-guardian/sdk@0.1.0/edge';
import { supabaseTransport } from 'npm:@rollback-guardian/sdk@0.1.0/supabase';

const flags = createEdgeFlags({
  transport: () => supabaseTransport(createClient(Deno.env.get('SUPABASE_URL')!, Deno.env.get('SUPABASE_SERVICE_ROLE_KEY')!, { auth: { persistSession: false } })),
  realtime: true,
});

function userIdOf(req: Request): string {
  const token = req.headers.get('Authorization')?.replace(/^Bearer /, '') ?? '';
  try {
    const claims = JSON.parse(atob(token.split('.')[1]!.replaceAll('-', '+').replaceAll('_', '/'))) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : '';
  } catch {
    return '';
  }
}

export async function handler(req: Request): Promise<Response> {
  const userId = userIdOf(req);
  if (await flags.checkFeatureFlag(userId, 'booking_agent_enabled')) {
    return Response.json({ flow: 'ai-agent', userId });
  }
  return Response.json({ flow: 'classic', userId });
}

Deno.serve({ port: Number(Deno.env.get('PORT') ?? 8000), hostname: '127.0.0.1', onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}`) }, handler);
