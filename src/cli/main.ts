#!/usr/bin/env node
// `pgops`: starts or watches pg-ops workflows through the typed client. It shows progress while
// it waits, prints the UI link of the run, `--json` for scripts, `--no-wait` to return the
// workflow id at once. Ctrl-C detaches (the workflow keeps running); `pgops cancel` cancels.
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_TASK_QUEUE } from '../contract/definitions';
import { EXIT, exitCodeFor } from './exitCodes';
import { OPERATION_COMMANDS } from './operationCommands';
import { connect, globals, print } from './run';
import { addScheduleCommands } from './scheduleCommands';

const EXAMPLES = `
Examples:
  pgops stop orders --hold --max-hold 2h      stop for maintenance; "pgops resume <id>" starts it again
  pgops start orders
  pgops backup orders --keep-count 7          online snapshot backup, keep the newest 7
  pgops backups orders                        list backups, newest first (and those being deleted)
  pgops delete-backup orders <id> --confirm orders   delete one, or finish its interrupted deletion
  pgops archive status orders                 the WAL archive: size, oldest needed segment and why
  pgops restore orders --backup latest --confirm orders --to-time 2026-11-22T10:15:00+01:00
  pgops locate orders-delayed --from 2026-11-22T10:00:00Z --to 2026-11-22T10:30:00Z --table orders
  pgops pitr orders-delayed --xid 73412 --then export --tables orders --insert-missing
  pgops verify orders                         restore drill of the newest backup on a scratch server
  pgops recover orders --xid 73412 --tables orders --insert-missing   rows back from a backup, into the primary
  pgops recover orders --from 2026-11-22T10:00:00Z --to 2026-11-22T10:30:00Z --databases appdb --restore-as appdb_back
  pgops scratch open orders --time 2026-11-22T10:14:00Z --ttl 2h   a read-only server as of then; "pgops scratch close <id>"
  pgops status orders                         operations running on a cluster
  pgops schedule create orders --cron '0 3 * * *' --keep-count 7
  pgops schedule create orders --verify --cron '0 5 * * *'   a nightly restore drill
  pgops backup orders --json --no-wait        print {"workflowId": ...} and return

Connection, as every Temporal tool: --profile / TEMPORAL_PROFILE of the config file (TEMPORAL_CONFIG_FILE,
~/.config/temporalio/temporal.toml), then TEMPORAL_ADDRESS (127.0.0.1:7233), TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH;
--address and --namespace win. --task-queue / PGOPS_TASK_QUEUE (pg-ops), --ui-url / TEMPORAL_UI_URL
(http://127.0.0.1:8233).

Exit codes: 0 done, 1 the operation failed, 2 bad usage or input, 3 cluster busy, 4 refused
before touching anything (precondition, unknown cluster, catalog, login), 5 Temporal unreachable,
6 cancelled, 130 detached with Ctrl-C (the workflow keeps running).`;

/** The root command: the connection, output and wait options every command shares. */
function rootCommand(): Command {
  return new Command('pgops')
    .description('PostgreSQL day-2 operations as durable Temporal workflows')
    .option('--address <host:port>', 'Temporal frontend (default: profile, TEMPORAL_ADDRESS, 127.0.0.1:7233)')
    .option('--namespace <ns>', 'Temporal namespace (default: profile, TEMPORAL_NAMESPACE, "default")')
    .option('--profile <name>', 'profile of the Temporal config file (default: TEMPORAL_PROFILE, "default")')
    .addOption(
      new Option('--task-queue <queue>', 'where pg-ops workers poll')
        .env('PGOPS_TASK_QUEUE')
        .default(DEFAULT_TASK_QUEUE),
    )
    .addOption(
      new Option('--ui-url <url>', 'Temporal UI, for links').env('TEMPORAL_UI_URL').default('http://127.0.0.1:8233'),
    )
    .option('--json', 'print the result as JSON (no progress display)')
    .option('--no-wait', 'start the workflow and print its id without waiting')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError('(add --help for usage and examples)')
    .exitOverride();
}

/** `status`, `resume` and `cancel`: about runs, whatever their operation. */
function addRunCommands(program: Command): void {
  program
    .command('status <cluster>')
    .description('operations running on a cluster and where each one is')
    .action(async (cluster: string, _o, cmd: Command) => {
      const g = globals(cmd);
      const pgops = await connect(g);
      const running = await pgops.runningOn(cluster);
      const rows = await Promise.all(
        running.map(async (r) => ({
          ...r,
          progress: await pgops
            .attach(r.workflowId, r.runId)
            .progress()
            .catch(() => undefined),
        })),
      );
      print(g, rows, () =>
        rows.length === 0
          ? `nothing running on ${cluster}`
          : rows
              .map((r) => `${r.workflowId}  ${r.type}  ${r.progress ? `${r.progress.step}: ${r.progress.detail}` : ''}`)
              .join('\n'),
      );
    });

  program
    .command('resume <workflowId>')
    .description("end a planned stop's hold (or a PITR held at its target)")
    .action(async (workflowId: string, _o, cmd: Command) => {
      const g = globals(cmd);
      await (await connect(g)).resume(workflowId, 'pgops CLI');
      print(g, { resumed: workflowId }, () => `resume sent to ${workflowId}`);
    });

  program
    .command('cancel <workflowId>')
    .description('cancel a running operation (a held stop starts the cluster again)')
    .action(async (workflowId: string, _o, cmd: Command) => {
      const g = globals(cmd);
      await (await connect(g)).attach(workflowId).handle.cancel();
      print(g, { cancelled: workflowId }, () => `cancellation requested for ${workflowId}`);
    });
}

export function buildProgram(): Command {
  const program = rootCommand();
  for (const addCommand of Object.values(OPERATION_COMMANDS)) addCommand(program);
  addRunCommands(program);
  addScheduleCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      if (err.code === 'pgops.usage') console.error(`pgops: ${err.message}`);
      return EXIT.usage;
    }
    const code = exitCodeFor(err);
    const json = argv.includes('--json');
    const message = err instanceof Error ? err.message : String(err);
    if (json) console.log(JSON.stringify({ error: { type: (err as { type?: string }).type ?? 'Error', message } }));
    console.error(`pgops: ${code === EXIT.unreachable ? `cannot reach Temporal: ${message}` : message}`);
    return code;
  }
}

if (require.main === module) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(EXIT.failed);
    },
  );
}
