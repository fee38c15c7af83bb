/**
 * Builds the dashboard into dashboard/dist (run by the root `prepare`, so `npm ci && npm start`
 * serves /admin with no extra step). A production install (`npm ci --omit=dev`) has no Vite:
 * then it says so and leaves the build to the image's build stage instead of failing the install.
 */
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let vite: typeof import('vite');
try {
  vite = await import('vite');
} catch {
  console.warn('dashboard: vite is not installed (a production install?); skipping the build. Run `npm ci` with dev dependencies, then `npm run build -w dashboard`.');
  process.exit(0);
}
const started = Date.now();
await vite.build({ root, configFile: `${root}/vite.config.ts`, logLevel: 'warn' });
console.log(`dashboard: built dashboard/dist in ${Date.now() - started} ms`);
