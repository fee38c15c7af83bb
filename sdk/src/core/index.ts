export { murmur3_32 } from './murmur3.ts';
export { bucket, evaluate } from './evaluate.ts';
export type { EvaluationReason, EvaluationResult, FlagDefinition } from './evaluate.ts';
export { compileFlag, compiledBucket, evaluateCompiled, isCompiledOn } from './compiled.ts';
export type { CompiledFlag } from './compiled.ts';
