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
import { startOrFail, toResolution, typeMismatch, watchClient } from './shared.ts';

/**
 * OpenFeature web provider for Rollback Guardian flags. Each batch of flag changes is one
 * `PROVIDER_CONFIGURATION_CHANGED` with the flags' names; a lost change feed or a failed refresh
 * is `PROVIDER_STALE`, recovery `PROVIDER_READY`; a failed first load rejects `initialize()` with
 * a `ProviderNotReadyError`. `onContextChange` re-fetches the user's flags; an evaluation whose
 * `targetingKey` is not the user the flags were loaded for gets the default with `INVALID_CONTEXT`.
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
    await startOrFail(this.client);
    this.offChange = watchClient(this.client, {
      configurationChanged: (flagsChanged) => this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged }),
      stale: (message) => this.events.emit(ProviderEvents.Stale, { message }),
      ready: () => this.events.emit(ProviderEvents.Ready),
    });
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

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext = {}): ResolutionDetails<boolean> {
    // Client mode evaluates for the signed-in user (the database's auth.uid()): a context naming
    // someone else must not get that user's values.
    const key = context.targetingKey;
    if (typeof key === 'string' && key !== '' && key !== this.client.currentUser) {
      return {
        value: defaultValue,
        reason: StandardResolutionReasons.ERROR,
        errorCode: ErrorCode.INVALID_CONTEXT,
        errorMessage: `targetingKey ${JSON.stringify(key)} is not the user the flags were loaded for (${JSON.stringify(this.client.currentUser)}); sign that user in (the flags follow the session), or leave targetingKey out`,
      };
    }
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
