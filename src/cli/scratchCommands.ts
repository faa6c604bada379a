// The commands of the scratch operations: `pgops verify`, `pgops recover`, `pgops scratch open|list|gc`
// (their verbs and help lines from the operations' table), and their results in words.
import { Command, CommanderError } from 'commander';
import { OPERATIONS, type OperationName, type Operations } from '../contract/operations';
import { EXIT } from './exitCodes';
import { connect, globals, print, runOperation } from './run';

type Builders = {
  [K in 'verifyBackup' | 'recoverRows' | 'openScratch' | 'listScratch' | 'scratchGc']: (program: Command) => void;
};

function command(parent: Command, operation: OperationName, args: string): Command {
  const { cliVerb, summary } = OPERATIONS[operation];
  return parent.command(`${cliVerb.split(' ').at(-1)}${args ? ` ${args}` : ''}`).description(summary);
}

/** The `scratch` group, made once whichever of its commands comes first. */
function scratchGroup(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'scratch') ??
    program.command('scratch').description('scratch servers: clones of backups that never touch production')
  );
}

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** `--xid`, `--time`, `--lsn`, `--name`, or an incident window `--from … --to …` (with `--table`): exactly one. */
function recoverTarget(o: Record<string, string | undefined>): Operations['recoverRows']['input']['target'] {
  const given = [
    o.xid && { xid: o.xid },
    o.time && { time: o.time },
    o.lsn && { lsn: o.lsn },
    o.name && { name: o.name },
    (o.from || o.to) && { incident: { from: o.from ?? '', to: o.to ?? '', ...(o.table && { table: o.table }) } },
  ].filter(Boolean);
  if (given.length !== 1)
    throw new CommanderError(
      EXIT.usage,
      'pgops.usage',
      'give exactly one target: --xid, --time, --lsn, --name, or an incident window --from … --to …',
    );
  return given[0] as Operations['recoverRows']['input']['target'];
}

function describeVerify(r: Operations['verifyBackup']['result']): string {
  const v = r.verification;
  const c = r.checks;
  return [
    `backup ${r.backup} of ${r.cluster} restores: usable after ${(v.timeToUsableMs / 1000).toFixed(1)} s (recovery ${(v.recoveryMs / 1000).toFixed(1)} s, to ${v.replayedTo})`,
    c.amcheck && `  pg_amcheck: ${c.amcheck.databases} database(s), no corruption`,
    c.checksums &&
      `  pg_checksums: ${c.checksums.enabled ? 'every block verified' : 'data checksums are off (skipped)'}`,
    c.archive && `  WAL archive: ${c.archive.note}`,
    `  scratch ${r.scratch.id}: ${r.scratch.methods.join('; ')}; removed`,
  ]
    .filter(Boolean)
    .join('\n');
}

function describeRecover(r: Operations['recoverRows']['result']): string {
  return [
    `${r.cluster}: recovered from backup ${r.backup}, replay stopped at ${r.stopped.replayLsn ?? '?'}${r.stopped.note ? ` (${r.stopped.note})` : ''}`,
    ...(r.exported ?? []).map((e) => `  ${e.table}: ${e.rows} row(s) → ${e.file}`),
    ...(r.inserted ?? []).map(
      (i) =>
        `  ${i.table}: ${i.inserted} missing row(s) inserted into the primary${i.createdTable ? ' (table created)' : ''}`,
    ),
    ...(r.dumps ?? []).map((d) => `  database ${d.database}: ${d.file} (${d.bytes} bytes)`),
    ...(r.restoredAs ? [`  database ${r.restoredAs.from} restored into the primary as ${r.restoredAs.database}`] : []),
  ].join('\n');
}

export const SCRATCH_COMMANDS: Builders = {
  verifyBackup: (program) =>
    command(program, 'verifyBackup', '<cluster>')
      .option('--backup <id>', 'a backup id (default: the newest, "latest")')
      .option('--to-end', 'replay the whole WAL archive ("now"), not only to consistency')
      .option('--no-amcheck', 'skip pg_amcheck')
      .option('--no-checksums', 'skip pg_checksums')
      .option('--no-archive-check', 'skip the WAL archive check')
      .option('--max-duration <duration>', 'give up after this long (default 6h)')
      .action(async (cluster: string, o, cmd: Command) =>
        runOperation(
          cmd,
          'verifyBackup',
          {
            cluster,
            backup: o.backup,
            checks: {
              amcheck: o.amcheck,
              checksums: o.checksums,
              archive: o.archiveCheck,
              replayToEnd: o.toEnd === true,
            },
            maxDuration: o.maxDuration,
          },
          describeVerify,
        ),
      ),

  recoverRows: (program) =>
    command(program, 'recoverRows', '<cluster>')
      .option('--xid <xid>', 'just before this transaction (the bad one)')
      .option('--time <iso>', 'as of this time (with a zone)')
      .option('--lsn <lsn>')
      .option('--name <restore point>')
      .option('--from <iso>', 'an incident window: the one transaction that deleted, truncated or dropped in it')
      .option('--to <iso>')
      .option('--table <name>', 'with --from/--to: only incidents on this table')
      .option('--inclusive', 'include the target transaction')
      .option('--tables <list>', 'tables to export, comma-separated', list)
      .option('--insert-missing', 'insert the exported rows the primary lacks')
      .option('--databases <list>', 'databases to dump (pg_dump -Fc), comma-separated', list)
      .option('--restore-as <name>', 'restore the one dumped database into the primary under this new name')
      .option('--backup <id>', 'start from this backup instead of the newest before the target')
      .option('--export-dir <dir>', "a directory below the catalog's exportDir")
      .option('--max-duration <duration>', 'give up after this long (default 6h)')
      .option('--wait-for-lock', 'for the insert or restore-as: queue behind another operation')
      .action(async (cluster: string, o, cmd: Command) =>
        runOperation(
          cmd,
          'recoverRows',
          {
            cluster,
            target: recoverTarget(o),
            inclusive: o.inclusive,
            tables: o.tables,
            insertMissing: o.insertMissing,
            databases: o.databases,
            restoreAs: o.restoreAs,
            backup: o.backup,
            exportDir: o.exportDir,
            maxDuration: o.maxDuration,
            waitForLock: o.waitForLock,
          },
          describeRecover,
        ),
      ),

  openScratch: (program) => {
    scratchGroup(program)
      .command('close <workflowId>')
      .description('close an open scratch server (pgops scratch open): stopped and removed')
      .action(async (workflowId: string, _o, cmd: Command) => {
        const g = globals(cmd);
        await (await connect(g)).closeScratch(workflowId, 'pgops CLI');
        print(g, { closed: workflowId }, () => `close sent to ${workflowId}`);
      });
    command(scratchGroup(program), 'openScratch', '<cluster>')
      .option('--time <iso>', 'as of this time (with a zone)')
      .option('--lsn <lsn>')
      .option('--xid <xid>', 'just before this transaction')
      .option('--backup <id>', 'a backup as it was taken ("latest" for the newest)')
      .requiredOption('--ttl <duration>', 'how long it stays open (e.g. 2h; at most 7d)')
      .action(async (cluster: string, o, cmd: Command) => {
        const asOf = [
          o.time && { time: o.time },
          o.lsn && { lsn: o.lsn },
          o.xid && { xid: o.xid },
          o.backup && { backup: o.backup },
        ].filter(Boolean);
        if (asOf.length !== 1)
          throw new CommanderError(EXIT.usage, 'pgops.usage', 'give exactly one of --time, --lsn, --xid or --backup');
        return runOperation(
          cmd,
          'openScratch',
          { cluster, asOf: asOf[0] as Operations['openScratch']['input']['asOf'], ttl: o.ttl },
          (r) =>
            `${r.cluster}: scratch ${r.scratch.id} of backup ${r.backup} was open ${Math.round(r.openMs / 1000)} s (${r.opened.psql}); ended by ${r.ended}, removed`,
        );
      });
  },

  listScratch: (program) =>
    command(scratchGroup(program), 'listScratch', '[cluster]').action(
      async (cluster: string | undefined, _o, cmd: Command) =>
        runOperation(cmd, 'listScratch', { cluster }, (r) =>
          r.scratch.length === 0
            ? 'no scratch servers'
            : r.scratch
                .map(
                  (s) =>
                    `${s.id}  ${s.cluster}  backup ${s.backup}  port ${s.port}  ${s.owner.operation} ${s.owner.workflowId}  expires ${s.expiresAt}`,
                )
                .join('\n'),
        ),
    ),

  scratchGc: (program) =>
    command(scratchGroup(program), 'scratchGc', '[cluster]')
      .option('--all', 'remove every scratch server, even those whose workflow still runs')
      .action(async (cluster: string | undefined, o, cmd: Command) =>
        runOperation(
          cmd,
          'scratchGc',
          { cluster, all: o.all },
          (r) =>
            [
              ...r.removed.map((x) => `removed ${x.id} (${x.cluster}): ${x.why}`),
              ...r.kept.map((x) => `kept ${x.id} (${x.cluster}): ${x.owner} runs, expires ${x.expiresAt}`),
              ...r.failed.map((x) => `FAILED ${x.id} (${x.cluster}): ${x.error}`),
            ].join('\n') || 'no scratch servers',
        ),
      ),
};
