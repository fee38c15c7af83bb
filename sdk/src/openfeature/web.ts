/**
 * `@rollback-guardian/sdk/openfeature/web`: an OpenFeature web provider (@openfeature/web-sdk,
 * a peer dependency) over a {@link BrowserFlagClient}. Values are the signed-in user's, evaluated
 * by the database; a context change re-fetches them.
 *
 * @example
 * import { OpenFeature } from '@openfeature/web-sdk';
 * await OpenFeature.setProviderAndWait(new RollbackGuardianWebProvider(createBrowserClient({ transport })));
 * OpenFeature.getClient().getBooleanValue('ai_beta_users', false);
 */
import { ErrorCode, OpenFeatureEventEmitter, ProviderEvents, StandardResolutionReasons } from '@openfeature/web-sdk';
import type { EvaluationContext, JsonValue, Provider, ResolutionDetails } from '@openfeature/web-sdk';
import type { BrowserFlagClient } from '../client/browser.ts';
import { toResolution, typeMismatch } from './shared.ts';

/**
 * OpenFeature web provider for Rollback Guardian flags. Flag changes are emitted as
 * `PROVIDER_CONFIGURATION_CHANGED`; `onContextChange` re-fetches the user's flags.
 *
 * @example
 * OpenFeature.setProvider(new RollbackGuardianWebProvider(flags));
 */
export class RollbackGuardianWebProvider implements Provider {
  readonly metadata = { name: 'rollback-guardian' } as const;
  readonly runsOn = 'client';
  readonly events = new OpenFeatureEventEmitter();
  private readonly client: BrowserFlagClient;
  private offChange: (() => void) | null = null;

  constructor(client: BrowserFlagClient) {
    this.client = client;
  }

  async initialize(): Promise<void> {
    const status = await this.client.ready();
    if (status === 'ERROR') throw new Error('rollback-guardian: the first flag load failed and nothing is cached');
    this.offChange = this.client.onChange((e) => this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [e.flag] }));
  }

  async onContextChange(_old: EvaluationContext, _next: EvaluationContext): Promise<void> {
    // The user is the session's (auth.uid()); a context change usually follows a sign-in.
    const ok = await this.client.refresh();
    if (!ok) throw new Error('rollback-guardian: re-fetching flags for the new context failed; serving last-known values');
  }

  async onClose(): Promise<void> {
    this.offChange?.();
    await this.client.close();
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean): ResolutionDetails<boolean> {
    return toResolution(this.client.evaluate(flagKey, defaultValue), defaultValue);
  }

  resolveStringEvaluation(flagKey: string, defaultValue: string): ResolutionDetails<string> {
    return typeMismatch(flagKey, defaultValue);
  }

  resolveNumberEvaluation(flagKey: string, defaultValue: number): ResolutionDetails<number> {
    return typeMismatch(flagKey, defaultValue);
  }

  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
    return typeMismatch(flagKey, defaultValue);
  }
}

export { ErrorCode, StandardResolutionReasons };
