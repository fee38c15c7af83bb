import { describe, expectTypeOf, test } from 'vitest';
import { createBrowserClient, createServerClient, evaluate } from '../src/index.ts';
import type { BrowserFlagClient, ClientStatus, EvaluationResult, FlagEvaluation, FlagTransport, ServerFlagClient } from '../src/index.ts';
import type { FlagChangeEvent, RollbackEvent } from '../src/index.ts';
import { useFeatureFlag } from '../src/react/index.ts';
import { supabaseTransport } from '../src/supabase/index.ts';
import { createEdgeFlags } from '../src/edge/index.ts';
import type { EdgeFlags } from '../src/edge/index.ts';

describe('public API types', () => {
  test('clients and evaluation', () => {
    expectTypeOf(createServerClient).parameter(0).toHaveProperty('transport').toEqualTypeOf<FlagTransport>();
    expectTypeOf(createServerClient).returns.toEqualTypeOf<ServerFlagClient>();
    expectTypeOf(createBrowserClient).returns.toEqualTypeOf<BrowserFlagClient>();
    expectTypeOf<ServerFlagClient['isEnabled']>().parameters.toEqualTypeOf<[flagName: string, userId: string, defaultValue?: boolean]>();
    expectTypeOf<ServerFlagClient['isEnabled']>().returns.toEqualTypeOf<boolean>();
    expectTypeOf<ServerFlagClient['evaluate']>().returns.toEqualTypeOf<FlagEvaluation>();
    expectTypeOf<BrowserFlagClient['isEnabled']>().parameters.toEqualTypeOf<[flagName: string, defaultValue?: boolean]>();
    expectTypeOf<ServerFlagClient['ready']>().returns.toEqualTypeOf<Promise<ClientStatus>>();
    expectTypeOf(evaluate).returns.toEqualTypeOf<EvaluationResult>();
    expectTypeOf<FlagEvaluation['value']>().toEqualTypeOf<boolean>();
    expectTypeOf<ServerFlagClient['onChange']>().toBeCallableWith('flag', (e: FlagChangeEvent) => void e.flag);
    expectTypeOf<ServerFlagClient['onRollback']>().parameter(0).parameter(0).toEqualTypeOf<RollbackEvent>();
  });

  test('adapters', () => {
    expectTypeOf(useFeatureFlag).returns.toEqualTypeOf<boolean>();
    expectTypeOf(supabaseTransport).returns.toEqualTypeOf<FlagTransport>();
    expectTypeOf(createEdgeFlags).returns.toEqualTypeOf<EdgeFlags>();
    expectTypeOf<EdgeFlags['checkFeatureFlag']>().parameters.toEqualTypeOf<[userId: string, flagName: string]>();
    expectTypeOf<EdgeFlags['checkFeatureFlag']>().returns.toEqualTypeOf<Promise<boolean>>();
    expectTypeOf<EdgeFlags['evaluateFeatureFlag']>().returns.toEqualTypeOf<Promise<FlagEvaluation>>();
    // @ts-expect-error a user id is required in server mode
    expectTypeOf<ServerFlagClient['isEnabled']>().toBeCallableWith('f');
  });
});
