// A typed client for other services: start or run each operation with typed input, read its
// progress, send `resume`, list backups and the operations running on a cluster. Workflow ids
// name the cluster and the operation (`pgops/<cluster>/<operation>/<time>`), and failures come
// back as typed errors (ClusterBusyError, InvalidInputError, PreconditionFailedError...).
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { resolveTemporalConnection, type TemporalConnectionChoice } from '../config/temporalConnection';
import {
  closeScratchSignal,
  DEFAULT_TASK_QUEUE,
  lockStateQuery,
  lockWorkflowId,
  progressQuery,
  resumeSignal,
  type LockRequest,
  type Progress,
} from '../contract/definitions';
import { WORKFLOW_TYPES, type ListBackupsResult, type OperationName, type Operations } from '../contract/operations';
import { toPgOpsError } from './errors';
import { clusterNameProblem } from '../common/names';

// Each operation's workflow type, input and result: the table in src/contract/operations/registry.ts.
export { WORKFLOW_TYPES, type OperationName, type Operations };

export interface RunningOperation {
  workflowId: string;
  runId: string;
  type: string;
  startTime: Date;
}

export interface OperationHandle<R> {
  workflowId: string;
  handle: WorkflowHandle;
  /** Waits for the result; a failure is thrown as a typed PgOpsError. */
  result(): Promise<R>;
  progress(): Promise<Progress>;
}

export class PgOpsClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = DEFAULT_TASK_QUEUE,
  ) {}

  /**
   * Connects as every Temporal tool does: a profile of the standard config file, then TEMPORAL_ADDRESS,
   * TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and TEMPORAL_TLS_* (see resolveTemporalConnection); `options` win.
   */
  static async connect(
    options: TemporalConnectionChoice & { taskQueue?: string; connectTimeoutMs?: number } = {},
  ): Promise<PgOpsClient> {
    const { connectionOptions, namespace } = resolveTemporalConnection(options);
    const connection = await Connection.connect({ ...connectionOptions, connectTimeout: options.connectTimeoutMs });
    return new PgOpsClient(new Client({ connection, namespace }), options.taskQueue);
  }

  /** `pgops/<cluster>/<operation>/<UTC time>`: readable in the UI's list. */
  static workflowId(cluster: string, operation: OperationName, at = new Date()): string {
    return `pgops/${cluster}/${operation}/${at.toISOString().replace(/[:.]/g, '-')}`;
  }

  async start<K extends OperationName>(
    operation: K,
    input: Operations[K]['input'],
    opts: { workflowId?: string } = {},
  ): Promise<OperationHandle<Operations[K]['result']>> {
    const workflowId = opts.workflowId ?? PgOpsClient.workflowId(input.cluster ?? 'all', operation);
    const handle = await this.client.workflow.start(WORKFLOW_TYPES[operation], {
      taskQueue: this.taskQueue,
      workflowId,
      args: [input],
      // What the UI's list and the run's page show before anyone opens the input.
      staticSummary: `${operation} of ${input.cluster ? `cluster ${input.cluster}` : 'every cluster'}`,
      staticDetails: `pg-ops ${WORKFLOW_TYPES[operation]}\n\n\`\`\`json\n${JSON.stringify(input, null, 2)}\n\`\`\``,
    });
    return this.wrap(handle);
  }

  /** Starts the operation and waits for its result. */
  async run<K extends OperationName>(operation: K, input: Operations[K]['input']): Promise<Operations[K]['result']> {
    return (await this.start(operation, input)).result();
  }

  /** A handle on an operation started elsewhere (the UI, the CLI, a schedule). */
  attach<R = unknown>(workflowId: string, runId?: string): OperationHandle<R> {
    return this.wrap(this.client.workflow.getHandle(workflowId, runId));
  }

  async resume(workflowId: string, by = 'pg-ops client'): Promise<void> {
    await this.client.workflow.getHandle(workflowId).signal(resumeSignal, { by });
  }

  /** Ends an openScratchWorkflow: its scratch server is stopped and removed. */
  async closeScratch(workflowId: string, by = 'pg-ops client'): Promise<void> {
    await this.client.workflow.getHandle(workflowId).signal(closeScratchSignal, { by });
  }

  listBackups(cluster: string): Promise<ListBackupsResult> {
    return this.run('listBackups', { cluster });
  }

  /**
   * Operations running on a cluster, newest first. Visibility (search attribute PgCluster) lists
   * them, but it is written a moment after each transition (on SQL visibility, up to seconds): the
   * lock workflow's holder and queue are added from the lock itself, and every run listed is
   * confirmed running by the server before it is returned.
   */
  async runningOn(cluster: string): Promise<RunningOperation[]> {
    // The name goes into a visibility query: only a valid cluster name may.
    const problem = clusterNameProblem(cluster);
    if (problem) throw new Error(problem);
    const listed = new Map<string, string>();
    for await (const wf of this.client.workflow.list({
      query: `PgCluster = '${cluster}' AND ExecutionStatus = 'Running' AND WorkflowType != 'clusterLockWorkflow'`,
    }))
      listed.set(wf.workflowId, wf.runId);
    for (const request of await this.lockRequests(cluster))
      if (!listed.has(request.workflowId)) listed.set(request.workflowId, request.runId);
    const running = await Promise.all(
      [...listed].map(async ([workflowId, runId]) => {
        const run = await this.client.workflow
          .getHandle(workflowId, runId)
          .describe()
          .catch(() => undefined);
        return run?.status.name === 'RUNNING'
          ? { workflowId, runId: run.runId, type: run.type, startTime: run.startTime }
          : [];
      }),
    );
    return running.flat().sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
  }

  /** The holder and queue of the cluster's lock workflow, when it runs and answers within 5 s. */
  private async lockRequests(cluster: string): Promise<LockRequest[]> {
    const lock = this.client.workflow.getHandle(lockWorkflowId(cluster, this.taskQueue));
    const running = await lock
      .describe()
      .then((d) => d.status.name === 'RUNNING')
      .catch(() => false);
    if (!running) return [];
    // A query needs a worker: with none polling, the list above is all there is.
    const state = await this.client.connection
      .withDeadline(Date.now() + 5000, () => lock.query(lockStateQuery))
      .catch(() => undefined);
    return state ? [...(state.holder ? [state.holder] : []), ...state.queue] : [];
  }

  private wrap<R>(handle: WorkflowHandle): OperationHandle<R> {
    return {
      workflowId: handle.workflowId,
      handle,
      result: async () => {
        try {
          return (await handle.result()) as R;
        } catch (err) {
          throw toPgOpsError(err, handle.workflowId);
        }
      },
      progress: () => handle.query(progressQuery),
    };
  }
}
