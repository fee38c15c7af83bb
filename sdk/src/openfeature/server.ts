/**
 * `@rollback-guardian/sdk/openfeature/server`: an OpenFeature server provider
 * (@openfeature/server-sdk, a peer dependency) over a {@link ServerFlagClient}. Boolean flags
 * only; `targetingKey` is the user id.
 *
 * @example
 * import { OpenFeature } from '@openfeature/server-sdk';
 * await OpenFeature.setProviderAndWait(new RollbackGuardianProvider(createServerClient({ transport })));
 * const on = await OpenFeature.getClient().getBooleanValue('booking_agent_enabled', false, { targetingKey: user.id });
 */
import { ErrorCode, OpenFeatureEventEmitter, ProviderEvents, StandardResolutionReasons } from '@openfeature/server-sdk';
import type { EvaluationContext, JsonValue, Provider, ResolutionDetails } from '@openfeature/server-sdk';
import type { ServerFlagClient } from '../client/server.ts';
import { startOrFail, toResolution, typeMismatch, watchClient } from './shared.ts';

/**
 * OpenFeature server provider for Rollback Guardian flags. `initialize()` waits for the first
 * load (and throws if it failed with nothing to serve); each batch of flag changes is
 * one `PROVIDER_CONFIGURATION_CHANGED` with the flags' names; a lost change feed or a failed
 * refresh is `PROVIDER_STALE`, recovery `PROVIDER_READY`; a first load that fails with nothing
 * cached rejects `initialize()` with a `ProviderNotReadyError` (`PROVIDER_ERROR`).
 *
 * @example
 * OpenFeature.setProvider(new RollbackGuardianProvider(flags));
 */
export class RollbackGuardianProvider implements Provider {
  readonly metadata = { name: 'rollback-guardian' } as const;
  readonly runsOn = 'server';
  readonly events = new OpenFeatureEventEmitter();
  private readonly client: ServerFlagClient;
  private offChange: (() => void) | null = null;

  constructor(client: ServerFlagClient) {
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


  async onClose(): Promise<void> {
    this.offChange?.();
    await this.client.close();
  }

  async resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>> {
    const userId = context.targetingKey;
    if (typeof userId !== 'string' || userId === '') {
      return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TARGETING_KEY_MISSING, errorMessage: 'evaluation context has no targetingKey (the user id)' };
    }
    return toResolution(this.client.evaluate(flagKey, userId, defaultValue), defaultValue);
  }

  async resolveStringEvaluation(flagKey: string, defaultValue: string): Promise<ResolutionDetails<string>> {
    return typeMismatch(flagKey, defaultValue);
  }

  async resolveNumberEvaluation(flagKey: string, defaultValue: number): Promise<ResolutionDetails<number>> {
    return typeMismatch(flagKey, defaultValue);
  }

  async resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T): Promise<ResolutionDetails<T>> {
    return typeMismatch(flagKey, defaultValue);
  }
}
