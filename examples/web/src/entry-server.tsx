import { renderToString } from 'react-dom/server';
import { App } from './App.tsx';
import { configScript } from './config.ts';
import type { AppConfig } from './config.ts';

/** Server render: the markup for the user's flag values, and the config the browser hydrates with. */
export function render(config: AppConfig): { html: string; head: string } {
  return { html: renderToString(<App client={null} snapshot={config.snapshot} />), head: configScript(config) };
}
