export { EventBus, type RunEventListener } from './event-bus.ts';
export { StorageRunJournal, FINAL_EVENTS } from './journal.ts';
export { InProcessRunQueue, type RunQueue, type RunHandler } from './run-queue.ts';
export { AgentStepRunner } from './step-runner.ts';
export { RunService, TERMINAL_RUN_STATUSES, IDEMPOTENCY_WINDOW_MS, type RunView, type StepResultView, type RunServiceDeps, type StartRunInput } from './runs.ts';
export { WorkflowService, toWorkflowView, type WorkflowView, type WorkflowFormat } from './workflows.ts';
export { ChatService, type ChatInput, type ChatResult } from './chat-service.ts';
export { validatePlan, PLAN_SCHEMA, MAX_PLAN_SUBTASKS, type ChatMode, type Plan, type Subtask } from './chat.ts';
