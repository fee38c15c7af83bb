import { defineConfig } from 'vite';

// React's automatic JSX runtime; nothing else is needed for this example.
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic' } },
  build: { sourcemap: true },
});
