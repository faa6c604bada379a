// The command of each operation: its verb and help line from the operations' table
// (src/contract/operations/registry.ts), its options, its input, and its result in words.
import { Command, CommanderError, Option } from 'commander';
import { OPERATIONS, type OperationName, type Operations } from '../contract/operations';
import { EXIT } from './exitCodes';
import { runOperation } from './run';
import { SCRATCH_COMMANDS } from './scratchCommands';

const duration = (v: string) => v;

export const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

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

/** `pgops <verb> <arguments>` of an operation, its verb and help line from the operations' table. */
function operationCommand(parent: Command, operation: OperationName, args = '<cluster>'): Command {
  const { cliVerb, summary } = OPERATIONS[operation];
  return parent.command(`${cliVerb.split(' ').at(-1)} ${args}`).description(summary);
}

export const keepOption = (o: { keepCount?: number; keepAge?: string }) =>
  o.keepCount !== undefined || o.keepAge !== undefined ? { count: o.keepCount, age: o.keepAge } : undefined;

/** The command of each operation (in the order of the help), built on `operationCommand`. */
export const OPERATION_COMMANDS: { [K in OperationName]: (program: Command) => void } = {
  plannedStop: (program) =>
    operationCommand(program, 'plannedStop')
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
      ),

  plannedStart: (program) =>
    operationCommand(program, 'plannedStart')
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
      ),

  backup: (program) =>
    operationCommand(program, 'backup')
      .option('--offline', 'stop, snapshot, start again')
      .option('--label <text>')
      .option('--keep-count <n>', 'then keep the newest n backups', (v) => Number(v))
      .option('--keep-age <duration>', 'then keep backups younger than this (e.g. 30d)')
      .option('--wait-for-lock')
      .action(async (cluster: string, o, cmd: Command) =>
        runOperation(
          cmd,
          'backup',
          {
            cluster,
            mode: o.offline ? 'offline' : 'online',
            label: o.label,
            keep: keepOption(o),
            waitForLock: o.waitForLock,
          },
          describeBackup,
        ),
      ),

  listBackups: (program) =>
    operationCommand(program, 'listBackups').action(async (cluster: string, _o, cmd: Command) =>
      runOperation(cmd, 'listBackups', { cluster }, (r) => describeBackups(cluster, r)),
    ),

  deleteBackup: (program) =>
    operationCommand(program, 'deleteBackup', '<cluster> <backup>')
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
      ),

  archiveStatus: (program) => {
    const archive = program.command('archive').description('the WAL archive of a cluster');
    operationCommand(archive, 'archiveStatus').action(async (cluster: string, _o, cmd: Command) =>
      runOperation(cmd, 'archiveStatus', { cluster }, describeArchiveStatus),
    );
  },

  restore: (program) =>
    operationCommand(program, 'restore')
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
      .addOption(
        new Option('--method <method>', 'how rbd images are put back (default: auto, the fastest safe one)').choices([
          'auto',
          'clone-swap',
          'rollback',
        ]),
      )
      .addOption(
        new Option('--flatten <when>', 'after a clone-swap: flatten the clones in the background, or never').choices([
          'background',
          'never',
        ]),
      )
      .option('--wait-for-lock')
      .action(async (cluster: string, o, cmd: Command) =>
        runOperation(
          cmd,
          'restore',
          {
            cluster,
            backup: o.backup,
            confirm: o.confirm,
            recoveryTarget: restoreTargetOption(o),
            inclusive: o.inclusive,
            afterRecovery: o.pauseAfter ? 'pause' : undefined,
            safetySnapshot: o.safetySnapshot,
            restoreMethod: o.method,
            flatten: o.flatten,
            waitForLock: o.waitForLock,
          },
          (r) =>
            [
              `restored ${r.restored.id} into ${r.cluster}: timeline ${r.verified.timeline}, ${r.verified.endLsn}`,
              ...(r.rollback.method
                ? [`volumes: ${r.rollback.method} in ${r.rollback.ms} ms (${r.rollback.methodNote})`]
                : []),
              ...(r.flatten?.workflowId ? [`flattening in the background: workflow ${r.flatten.workflowId}`] : []),
              ...(r.flatten?.note ? [r.flatten.note] : []),
              ...(r.undo ? [`to undo: ${r.undo}`] : []),
            ].join('\n'),
        ),
      ),

  locateIncident: (program) =>
    operationCommand(program, 'locateIncident')
      .requiredOption('--from <iso>')
      .requiredOption('--to <iso>')
      .option('--table <name>')
      .action(async (cluster: string, o, cmd: Command) =>
        runOperation(cmd, 'locateIncident', { cluster, from: o.from, to: o.to, table: o.table }, (r) =>
          JSON.stringify(r, null, 2),
        ),
      ),

  pitr: (program) =>
    operationCommand(program, 'pitr')
      .option('--xid <xid>')
      .option('--time <iso>')
      .option('--lsn <lsn>')
      .option('--name <restore point>')
      .addOption(new Option('--then <action>').choices(['pause', 'export', 'promote']).default('pause'))
      .option('--tables <list>', 'tables to export, comma-separated')
      .option('--insert-missing', 'insert the exported rows the primary lacks')
      .option('--inclusive')
      .option('--wait-for-lock')
      .action(async (cluster: string, o, cmd: Command) =>
        runOperation(
          cmd,
          'pitr',
          {
            cluster,
            target: pitrTargetOption(o),
            then: o.then,
            export: o.tables ? { tables: String(o.tables).split(','), insertMissing: o.insertMissing } : undefined,
            inclusive: o.inclusive,
            waitForLock: o.waitForLock,
          } as Operations['pitr']['input'],
          (r) => `${r.cluster}: ${r.finalState}; replay stopped at ${r.reached.replayLsn}`,
        ),
      ),
  ...SCRATCH_COMMANDS,
};

function describeBackup(r: Operations['backup']['result']): string {
  return `backup ${r.backup.id} (${r.took}) of ${r.cluster}: stop LSN ${r.backup.stopLsn}${r.backupModeMs !== undefined ? `, ${r.backupModeMs} ms in backup mode` : ''}${r.pruned?.deleted.length ? `; pruned ${r.pruned.deleted.join(', ')}` : ''}${r.pruned?.finished?.length ? `; finished the interrupted deletion of ${r.pruned.finished.join(', ')}` : ''}${r.archivePruned?.removedFiles ? `; removed ${r.archivePruned.removedSegments} WAL segment(s), ${mb(r.archivePruned.removedBytes)} from the archive` : ''}`;
}

function describeBackups(cluster: string, r: Operations['listBackups']['result']): string {
  const lines = [
    ...r.backups.map(
      (b) =>
        `${b.id}  ${b.kind.padEnd(11)} ${b.mode.padEnd(7)} ${b.stoppedAt}  ${b.label}${b.verification ? `  [drill ${b.verification.ok ? 'passed' : 'FAILED'} ${b.verification.at}]` : ''}`,
    ),
    // Not restorable: the next prune or delete-backup of the cluster finishes them.
    ...(r.beingDeleted ?? []).map(
      (b) =>
        `${b.id}  ${b.kind.padEnd(11)} ${b.mode.padEnd(7)} ${b.stoppedAt}  being deleted (since ${b.deletion.since}, by ${b.deletion.by})`,
    ),
    ...r.strays.map((id) => `${id}  stray: snapshots without a record`),
    ...(r.storage ?? []).map((line) => `storage: ${line}`),
  ];
  return lines.length === 0 ? `no backups of ${cluster}` : lines.join('\n');
}

/** `--to-time`, `--to-xid`, `--to-lsn`, `--to-name` or `--immediate`: at most one. */
function restoreTargetOption(
  o: Record<string, string | boolean | undefined>,
): Operations['restore']['input']['recoveryTarget'] {
  const targets = [
    o.toTime && { time: o.toTime },
    o.toXid && { xid: o.toXid },
    o.toLsn && { lsn: o.toLsn },
    o.toName && { name: o.toName },
    o.immediate && 'immediate',
  ].filter(Boolean);
  if (targets.length > 1) throw new CommanderError(EXIT.usage, 'pgops.usage', 'give at most one recovery target');
  return targets[0] as Operations['restore']['input']['recoveryTarget'];
}

/** `--xid`, `--time`, `--lsn` or `--name`: the first given. */
function pitrTargetOption(o: Record<string, string | undefined>): Operations['pitr']['input']['target'] {
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
  return target;
}
