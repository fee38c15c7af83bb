export { createServerClient, ServerFlagClient } from './server.ts';
export type { ServerClientOptions } from './server.ts';
export { createBrowserClient, BrowserFlagClient } from './browser.ts';
export type { BrowserClientOptions } from './browser.ts';
export { SdkError } from './errors.ts';
export type { SdkErrorCode } from './errors.ts';
export type { FlagChangeEvent } from './internal/base.ts';
export type {
  ChangeListener,
  ClientStatus,
  EvaluatedFlagRecord,
  EvaluationListener,
  FlagChange,
  FlagEvaluation,
  FlagRecord,
  FlagTransport,
  GuardState,
  RollbackEvent,
  RollbackListener,
  SdkLogger,
  StorageAdapter,
  SubscriptionStatus,
  Timers,
} from './types.ts';
