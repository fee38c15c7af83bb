// For type checks under Node only (tsc, vitest): Deno resolves `npm:` specifiers itself, TypeScript's
// NodeNext resolution does not. Each `npm:` specifier the functions import is declared here as the
// package installed in node_modules (the same major version).
declare module 'npm:@supabase/supabase-js@2' {
  export * from '@supabase/supabase-js';
}
