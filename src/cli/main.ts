#!/usr/bin/env node
// `pgops`: starts or watches pg-ops workflows through the typed client. It shows progress while
// it waits, prints the UI link of the run, `--json` for scripts, `--no-wait` to return the
// workflow id at once. Ctrl-C detaches (the workflow keeps running); `pgops cancel` cancels.
import { Command, CommanderError, Option } from 'commander';
import { PgOpsClient, type OperationName, type Operations } from '../client/pgOpsClient';
import { DEFAULT_TASK_QUEUE } from '../contract/definitions';
import { BackupSchedules } from '../client/backupSchedules';
import { EXIT, exitCodeFor } from './exitCodes';
import { watch } from './watch';

interface Globals {
  address?: string;
  namespace?: string;
  profile?: string;
  taskQueue: string;
  uiUrl: string;
  json?: boolean;
  wait: boolean;
}

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
  pgops status orders                         operations running on a cluster
  pgops schedule create orders --cron '0 3 * * *' --keep-count 7
  pgops backup orders --json --no-wait        print {"workflowId": ...} and return

Connection, as every Temporal tool: --profile / TEMPORAL_PROFILE of the config file (TEMPORAL_CONFIG_FILE,
~/.config/temporalio/temporal.toml), then TEMPORAL_ADDRESS (127.0.0.1:7233), TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH;
--address and --namespace win. --task-queue / PGOPS_TASK_QUEUE (pg-ops), --ui-url / TEMPORAL_UI_URL
(http://127.0.0.1:8233).

Exit codes: 0 done, 1 the operation failed, 2 bad usage or input, 3 cluster busy, 4 refused
before touching anything (precondition, unknown cluster, catalog, login), 5 Temporal unreachable,
6 cancelled, 130 detached with Ctrl-C (the workflow keeps running).`;

function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals() as Globals;
}

async function connect(g: Globals): Promise<PgOpsClient> {
  const { profile, address, namespace, taskQueue } = g;
  return PgOpsClient.connect({ profile, address, namespace, taskQueue, connectTimeoutMs: 5000 });
}

function print(g: Globals, value: unknown, human: () => string): void {
  console.log(g.json ? JSON.stringify(value, null, 2) : human());
}

async function runOperation<K extends OperationName>(
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
  if (!g.json) console.error(`[pgops] ${operation} on "${input.cluster}": ${op.workflowId}\n[pgops] ${link}`);
  process.once('SIGINT', () => {
    console.error(
      `\n[pgops] detached: workflow ${op.workflowId} keeps running. Watch it with "pgops status ${input.cluster}", stop it with "pgops cancel ${op.workflowId}".`,
    );
    process.exit(EXIT.detached);
  });
  const result = await watch(op, Boolean(process.stderr.isTTY) && !g.json);
  print(g, { workflowId: op.workflowId, result }, () => human(result));
}

const duration = (v: string) => v;

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

function describeArchiveStatus(s: Operations['archiveStatus']['result']): string {
  if (s.skipped) return `${s.cluster}: ${s.skipped}`;
  const lines = [
    `${s.archiveDir}: ${s.segments} segment(s), ${s.files} file(s), ${mb(s.bytes)}`,
    `  oldest segment ${s.oldestSegment ?? '-'}, newest ${s.newestSegment ?? '-'}`,
    s.oldestNeeded
      ? `  oldest needed ${s.oldestNeeded.fileName} (${s.oldestNeeded.startLsn}, timeline ${s.oldestNeeded.timeline}), by: ${s.oldestNeeded.neededBy.join('; ')}`
      : '  nothing in it is needed by a kept backup or a replica',
    `  a prune now would remove ${s.removable.files} file(s), ${mb(s.removable.bytes)}` +
      `${s.retention.prune ? '' : ' (walArchiveRetention.prune is false: it never runs)'}` +
      `${s.retention.keepExtra ? `; keepExtra ${s.retention.keepExtra}` : ''}`,
    ...(s.pendingPrune
      ? [
          `  an interrupted prune left ${s.pendingPrune.files} file(s) to remove (${s.pendingPrune.writtenAt}): the next backup with keep finishes it`,
        ]
      : []),
    ...(s.timelines ? [`  ${s.timelines}`] : []),
    ...s.notes.map((n) => `  note: ${n}`),
  ];
  return lines.join('\n');
}

export function buildProgram(): Command {
  const program = new Command('pgops')
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

  program
    .command('stop <cluster>')
    .description('planned stop: scale to 0 / pg_ctl stop, volumes kept')
    .option('--hold', 'hold stopped until "pgops resume", then start again')
    .option('--max-hold <duration>', 'longest hold (e.g. 2h; default 8h)', duration)
    .option('--reason <text>')
    .option('--wait-for-lock', 'queue behind another operation instead of failing')
    .action(async (cluster: string, o, cmd: Command) =>
      runOperation(
        cmd,
        'plannedStop',
        { cluster, holdUntilResumed: o.hold, maxHold: o.maxHold, reason: o.reason, waitForLock: o.waitForLock },
        (r) =>
          `stopped ${r.cluster}${r.hold ? `; held ${r.hold.heldMs} ms, ended by ${r.hold.resumedBy}, running again` : ''}`,
      ),
    );

  program
    .command('start <cluster>')
    .description('planned start: the recorded replica count, Ready and a query')
    .option('--replicas <n>', 'replicas to start', (v) => Number(v))
    .option('--wait-for-lock')
    .action(async (cluster: string, o, cmd: Command) =>
      runOperation(
        cmd,
        'plannedStart',
        { cluster, replicas: o.replicas, waitForLock: o.waitForLock },
        (r) =>
          `${r.cluster} running: ${r.readyReplicas} ready replica(s), ${r.msToReady} ms, PostgreSQL ${r.serverVersion}`,
      ),
    );

  program
    .command('backup <cluster>')
    .description('snapshot backup (online by default: pg_backup_start, snapshot, pg_backup_stop)')
    .option('--offline', 'stop, snapshot, start again')
    .option('--label <text>')
    .option('--keep-count <n>', 'then keep the newest n backups', (v) => Number(v))
    .option('--keep-age <duration>', 'then keep backups younger than this (e.g. 30d)')
    .option('--wait-for-lock')
    .action(async (cluster: string, o, cmd: Command) => {
      const keep =
        o.keepCount !== undefined || o.keepAge !== undefined ? { count: o.keepCount, age: o.keepAge } : undefined;
      await runOperation(
        cmd,
        'backup',
        { cluster, mode: o.offline ? 'offline' : 'online', label: o.label, keep, waitForLock: o.waitForLock },
        (r) =>
          `backup ${r.backup.id} (${r.took}) of ${r.cluster}: stop LSN ${r.backup.stopLsn}${r.backupModeMs !== undefined ? `, ${r.backupModeMs} ms in backup mode` : ''}${r.pruned?.deleted.length ? `; pruned ${r.pruned.deleted.join(', ')}` : ''}${r.pruned?.finished?.length ? `; finished the interrupted deletion of ${r.pruned.finished.join(', ')}` : ''}${r.archivePruned?.removedFiles ? `; removed ${r.archivePruned.removedSegments} WAL segment(s), ${mb(r.archivePruned.removedBytes)} from the archive` : ''}`,
      );
    });

  program
    .command('backups <cluster>')
    .description('list backups, newest first')
    .action(async (cluster: string, _o, cmd: Command) =>
      runOperation(cmd, 'listBackups', { cluster }, (r) => {
        const lines = [
          ...r.backups.map((b) => `${b.id}  ${b.kind.padEnd(11)} ${b.mode.padEnd(7)} ${b.stoppedAt}  ${b.label}`),
          // Not restorable: the next prune or delete-backup of the cluster finishes them.
          ...(r.beingDeleted ?? []).map(
            (b) =>
              `${b.id}  ${b.kind.padEnd(11)} ${b.mode.padEnd(7)} ${b.stoppedAt}  being deleted (since ${b.deletion.since}, by ${b.deletion.by})`,
          ),
          ...r.strays.map((id) => `${id}  stray: snapshots without a record`),
        ];
        return lines.length === 0 ? `no backups of ${cluster}` : lines.join('\n');
      }),
    );

  program
    .command('delete-backup <cluster> <backup>')
    .description('delete a backup, or finish a deletion a crash interrupted ("being deleted")')
    .requiredOption('--confirm <cluster>', 'the cluster name again')
    .option('--wait-for-lock')
    .action(async (cluster: string, backup: string, o, cmd: Command) =>
      runOperation(
        cmd,
        'deleteBackup',
        { cluster, backup, confirm: o.confirm, waitForLock: o.waitForLock },
        (r) =>
          `backup ${r.deleted.id} of ${r.cluster} deleted${r.resumed ? ' (an interrupted deletion, finished)' : ''}${r.finished.length ? `; also finished the interrupted deletion of ${r.finished.join(', ')}` : ''}`,
      ),
    );

  const archive = program.command('archive').description('the WAL archive of a cluster');
  archive
    .command('status <cluster>')
    .description('size of the WAL archive, its oldest needed segment and why, what a prune would remove')
    .action(async (cluster: string, _o, cmd: Command) =>
      runOperation(cmd, 'archiveStatus', { cluster }, describeArchiveStatus),
    );

  program
    .command('restore <cluster>')
    .description('rollback restore, with a safety snapshot first; optionally replay WAL to a target')
    .requiredOption('--backup <id>', 'a backup id, or "latest"')
    .requiredOption('--confirm <cluster>', 'the cluster name again')
    .option('--to-time <iso>', 'replay to this time (with a zone)')
    .option('--to-xid <xid>')
    .option('--to-lsn <lsn>')
    .option('--to-name <restore point>')
    .option('--immediate', 'stop as soon as the backup is consistent')
    .option('--inclusive', 'include the target transaction')
    .option('--pause-after', 'stay paused at the target instead of promoting')
    .option('--no-safety-snapshot', 'do not snapshot the current state first')
    .option('--wait-for-lock')
    .action(async (cluster: string, o, cmd: Command) => {
      const targets = [
        o.toTime && { time: o.toTime },
        o.toXid && { xid: o.toXid },
        o.toLsn && { lsn: o.toLsn },
        o.toName && { name: o.toName },
        o.immediate && 'immediate',
      ].filter(Boolean);
      if (targets.length > 1) throw new CommanderError(EXIT.usage, 'pgops.usage', 'give at most one recovery target');
      await runOperation(
        cmd,
        'restore',
        {
          cluster,
          backup: o.backup,
          confirm: o.confirm,
          recoveryTarget: targets[0] as Operations['restore']['input']['recoveryTarget'],
          inclusive: o.inclusive,
          afterRecovery: o.pauseAfter ? 'pause' : undefined,
          safetySnapshot: o.safetySnapshot,
          waitForLock: o.waitForLock,
        },
        (r) =>
          `restored ${r.restored.id} into ${r.cluster}: timeline ${r.verified.timeline}, ${r.verified.endLsn}${r.undo ? `\nto undo: ${r.undo}` : ''}`,
      );
    });

  program
    .command('locate <cluster>')
    .description('find the transactions that deleted, truncated or dropped in a time window (WAL archive)')
    .requiredOption('--from <iso>')
    .requiredOption('--to <iso>')
    .option('--table <name>')
    .action(async (cluster: string, o, cmd: Command) =>
      runOperation(cmd, 'locateIncident', { cluster, from: o.from, to: o.to, table: o.table }, (r) =>
        JSON.stringify(r, null, 2),
      ),
    );

  program
    .command('pitr <cluster>')
    .description('delayed-replica PITR: pause, replay to just before the target, then export, pause or promote')
    .option('--xid <xid>')
    .option('--time <iso>')
    .option('--lsn <lsn>')
    .option('--name <restore point>')
    .addOption(new Option('--then <action>').choices(['pause', 'export', 'promote']).default('pause'))
    .option('--tables <list>', 'tables to export, comma-separated')
    .option('--insert-missing', 'insert the exported rows the primary lacks')
    .option('--inclusive')
    .option('--wait-for-lock')
    .action(async (cluster: string, o, cmd: Command) => {
      const target = o.xid
        ? { xid: o.xid }
        : o.time
          ? { time: o.time }
          : o.lsn
            ? { lsn: o.lsn }
            : o.name
              ? { name: o.name }
              : undefined;
      if (!target) throw new CommanderError(EXIT.usage, 'pgops.usage', 'give a target: --xid, --time, --lsn or --name');
      await runOperation(
        cmd,
        'pitr',
        {
          cluster,
          target,
          then: o.then,
          export: o.tables ? { tables: String(o.tables).split(','), insertMissing: o.insertMissing } : undefined,
          inclusive: o.inclusive,
          waitForLock: o.waitForLock,
        } as Operations['pitr']['input'],
        (r) => `${r.cluster}: ${r.finalState}; replay stopped at ${r.reached.replayLsn}`,
      );
    });

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

  const schedule = program.command('schedule').description('scheduled backups (Temporal Schedules)');
  const schedules = async (cmd: Command) => {
    const g = globals(cmd);
    return { g, s: new BackupSchedules((await connect(g)).client, g.taskQueue) };
  };
  schedule
    .command('create <cluster>')
    .description('back the cluster up on a cron schedule (UTC); overlap SKIP, pause on failure')
    .requiredOption('--cron <expression>', 'e.g. "0 3 * * *" for 03:00 UTC every day')
    .option('--offline', 'offline backups (stop, snapshot, start)')
    .option('--keep-count <n>', 'keep the newest n backups', (v) => Number(v))
    .option('--keep-age <duration>', 'keep backups younger than this (e.g. 30d)')
    .action(async (cluster: string, o, cmd: Command) => {
      const { g, s } = await schedules(cmd);
      const keep =
        o.keepCount !== undefined || o.keepAge !== undefined ? { count: o.keepCount, age: o.keepAge } : undefined;
      const id = await s.create({ cluster, cron: o.cron, mode: o.offline ? 'offline' : 'online', keep });
      print(g, { scheduleId: id }, () => `schedule ${id} created`);
    });
  schedule
    .command('list')
    .description('the backup schedules')
    .action(async (_o, cmd: Command) => {
      const { g, s } = await schedules(cmd);
      const all = await s.list();
      print(g, all, () =>
        all.length === 0
          ? 'no backup schedules'
          : all
              .map(
                (x) =>
                  `${x.scheduleId}  ${x.cron.join(' ')}  ${x.paused ? 'PAUSED' : 'active'}  next ${x.nextActionTimes[0] ?? '-'}`,
              )
              .join('\n'),
      );
    });
  for (const [name, what] of [
    ['describe', 'show a schedule: paused or not, why, recent and next backups'],
    ['pause', 'pause a schedule'],
    ['unpause', 'resume a paused schedule'],
    ['trigger', 'take a backup now (skipped if one is running)'],
    ['delete', 'delete a schedule (backups are kept)'],
  ] as const) {
    schedule
      .command(`${name} <cluster>`)
      .description(what)
      .action(async (cluster: string, _o, cmd: Command) => {
        const { g, s } = await schedules(cmd);
        if (name === 'describe') {
          const d = await s.describe(cluster);
          print(g, d, () => JSON.stringify(d, null, 2));
          return;
        }
        await s[name](cluster);
        print(
          g,
          { [name]: BackupSchedules.scheduleId(cluster) },
          () => `${name}: ${BackupSchedules.scheduleId(cluster)}`,
        );
      });
  }

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
