export type { CompiledStep, CompiledWorkflow, RetrySpec, TemplateScope, WorkflowLimits, WorkflowProblem } from './types.ts';
export { DEFAULT_WORKFLOW_LIMITS, DEFAULT_MAX_CONSULTS, DEFAULT_CONSULT_DEPTH, DEFAULT_SHARED_CONTEXT_TOKENS } from './types.ts';
export { parseWorkflowSource } from './parse.ts';
export { compileWorkflow } from './compile.ts';
export { renderTemplate, templateReferences } from './template.ts';
export { compileCondition } from './condition.ts';
export {
  executeWorkflow,
  RunInterruptedError,
  Semaphore,
  sumUsage,
  type ExecuteOptions,
  type RunEventType,
  type RunJournal,
  type RunOutcome,
  type RunStatus,
  type StepCall,
  type ConsultChannel,
  type StepCallResult,
  type StepError,
  type StepFailure,
  type StepRunner,
  type StepState,
  type StepStatus,
  type TokenUsage,
} from './engine.ts';
