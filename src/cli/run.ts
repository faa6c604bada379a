// What every pgops command shares: the global options, the connection, printing, and running an
// operation with progress while it waits.
import type { Command } from 'commander';
import { PgOpsClient } from '../client/pgOpsClient';
import type { OperationName, Operations } from '../contract/operations';
import { EXIT } from './exitCodes';
import { watch } from './watch';

export interface Globals {
  address?: string;
  namespace?: string;
  profile?: string;
  taskQueue: string;
  uiUrl: string;
  json?: boolean;
  wait: boolean;
}

export function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals() as Globals;
}

export async function connect(g: Globals): Promise<PgOpsClient> {
  const { profile, address, namespace, taskQueue } = g;
  return PgOpsClient.connect({ profile, address, namespace, taskQueue, connectTimeoutMs: 5000 });
}

export function print(g: Globals, value: unknown, human: () => string): void {
  console.log(g.json ? JSON.stringify(value, null, 2) : human());
}

export async function runOperation<K extends OperationName>(
  cmd: Command,
  operation: K,
  input: Operations[K]['input'],
  human: (result: Operations[K]['result']) => string,
): Promise<void> {
  const g = globals(cmd);
  const pgops = await connect(g);
  const op = await pgops.start(operation, input);
  const link = `${g.uiUrl}/namespaces/${pgops.client.options.namespace}/workflows/${encodeURIComponent(op.workflowId)}`;
  if (!g.wait) {
    print(g, { workflowId: op.workflowId, ui: link }, () => `started ${op.workflowId}\n${link}`);
    return;
  }
  const where = input.cluster === undefined ? 'every cluster' : `"${input.cluster}"`;
  if (!g.json) console.error(`[pgops] ${operation} on ${where}: ${op.workflowId}\n[pgops] ${link}`);
  process.once('SIGINT', () => {
    console.error(
      `\n[pgops] detached: workflow ${op.workflowId} keeps running. Watch it with "pgops status ${input.cluster ?? '<cluster>'}", stop it with "pgops cancel ${op.workflowId}".`,
    );
    process.exit(EXIT.detached);
  });
  const result = await watch(op, Boolean(process.stderr.isTTY) && !g.json);
  print(g, { workflowId: op.workflowId, result }, () => human(result));
}
