import { ErrorCode, StandardResolutionReasons } from '@openfeature/core';
import type { ResolutionDetails } from '@openfeature/core';
import type { FlagEvaluation } from '../client/types.ts';

/** Maps an SDK evaluation to OpenFeature resolution details (reason and error code). */
export function toResolution(e: FlagEvaluation, defaultValue: boolean): ResolutionDetails<boolean> {
  if (e.reason === 'ERROR') {
    const errorCode =
      e.errorCode === 'FLAG_NOT_FOUND'
        ? ErrorCode.FLAG_NOT_FOUND
        : e.errorCode === 'PROVIDER_NOT_READY'
          ? ErrorCode.PROVIDER_NOT_READY
          : e.errorCode === 'INVALID_USER_ID'
            ? ErrorCode.TARGETING_KEY_MISSING
            : e.errorCode === 'INVALID_FLAG'
              ? ErrorCode.PARSE_ERROR
              : ErrorCode.GENERAL;
    return { value: defaultValue, reason: StandardResolutionReasons.ERROR, errorCode, errorMessage: `${e.flag}: ${e.errorCode ?? 'error'}` };
  }
  const reason =
    e.reason === 'DISABLED' ? StandardResolutionReasons.DISABLED
      : e.reason === 'TARGETING_MATCH' ? StandardResolutionReasons.TARGETING_MATCH
        : e.reason === 'SPLIT' ? StandardResolutionReasons.SPLIT
          : e.reason === 'CACHED' ? StandardResolutionReasons.CACHED
            : StandardResolutionReasons.UNKNOWN;
  return { value: e.value, reason, ...(e.version !== undefined ? { flagMetadata: { version: e.version } } : {}) };
}

/** Rollback Guardian flags are booleans: any other type is a TYPE_MISMATCH with the default. */
export function typeMismatch<T>(flagKey: string, defaultValue: T): ResolutionDetails<T> {
  return {
    value: defaultValue,
    reason: StandardResolutionReasons.ERROR,
    errorCode: ErrorCode.TYPE_MISMATCH,
    errorMessage: `${flagKey} is a boolean flag; use getBooleanValue / getBooleanDetails`,
  };
}
