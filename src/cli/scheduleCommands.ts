// `pgops schedule …`: scheduled backups and, with --verify, scheduled restore drills (Temporal
// Schedules, src/client/backupSchedules.ts and src/client/drillSchedules.ts).
import { CommanderError, type Command } from 'commander';
import { BackupSchedules, jitterMs, type ClusterSchedules } from '../client/backupSchedules';
import { DrillSchedules } from '../client/drillSchedules';
import { EXIT } from './exitCodes';
import { keepOption } from './operationCommands';
import { connect, globals, print, type Globals } from './run';

const usage = (message: string) => new CommanderError(EXIT.usage, 'pgops.usage', message);

/** `schedule create|list|describe|pause|unpause|trigger|delete`: scheduled backups and drills. */
export function addScheduleCommands(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('scheduled backups and, with --verify, scheduled restore drills (Temporal Schedules)');
  const connected = async (cmd: Command): Promise<{ g: Globals; backups: BackupSchedules; drills: DrillSchedules }> => {
    const g = globals(cmd);
    const { client } = await connect(g);
    return { g, backups: new BackupSchedules(client, g.taskQueue), drills: new DrillSchedules(client, g.taskQueue) };
  };
  schedule
    .command('create <cluster>')
    .description('back the cluster up (or, with --verify, drill its newest backup) on a cron schedule (UTC)')
    .requiredOption('--cron <expression>', 'e.g. "0 3 * * *" for 03:00 UTC every day')
    .option('--offline', 'offline backups (stop, snapshot, start)')
    .option('--keep-count <n>', 'keep the newest n backups', (v) => Number(v))
    .option('--keep-age <duration>', 'keep backups younger than this (e.g. 30d)')
    .option(
      '--jitter <duration>',
      'each run starts up to this much later, at random (default: a tenth of the interval, at most 5m; 0: none)',
    )
    .option('--verify', 'a restore drill of the newest backup instead of a backup (schedule pgops-verify/<cluster>)')
    .option('--to-end', 'with --verify: replay the whole WAL archive, not only to consistency')
    .option('--max-duration <duration>', 'with --verify: a drill gives up after this long (default 6h)')
    .action(async (cluster: string, o, cmd: Command) => {
      const backupOnly = ['offline', 'keepCount', 'keepAge'].filter((k) => o[k] !== undefined);
      const drillOnly = ['toEnd', 'maxDuration'].filter((k) => o[k] !== undefined);
      if (o.verify && backupOnly.length)
        throw usage('--offline, --keep-count and --keep-age are for backups, not --verify');
      if (!o.verify && drillOnly.length) throw usage('--to-end and --max-duration need --verify');
      if (o.jitter !== undefined)
        try {
          jitterMs(o.jitter);
        } catch (err) {
          throw usage(err instanceof Error ? err.message : String(err));
        }
      const { g, backups, drills } = await connected(cmd);
      const id = o.verify
        ? await drills.create({
            cluster,
            cron: o.cron,
            ...(o.toEnd && { checks: { replayToEnd: true } }),
            maxDuration: o.maxDuration,
            jitter: o.jitter,
          })
        : await backups.create({
            cluster,
            cron: o.cron,
            mode: o.offline ? 'offline' : 'online',
            keep: keepOption(o),
            jitter: o.jitter,
          });
      print(g, { scheduleId: id }, () => `schedule ${id} created`);
    });
  schedule
    .command('list')
    .description('the backup and restore drill schedules')
    .action(async (_o, cmd: Command) => {
      const { g, backups, drills } = await connected(cmd);
      const all = [...(await backups.list()), ...(await drills.list())];
      print(g, all, () =>
        all.length === 0
          ? 'no schedules'
          : all
              .map(
                (x) =>
                  `${x.kind.padEnd(6)}  ${x.scheduleId}  ${x.cron.join(' ')}  ${x.paused ? 'PAUSED' : 'active'}  jitter ${x.jitter}  next ${x.nextActionTimes[0] ?? '-'}${x.paused && x.note ? `  (${x.note})` : ''}`,
              )
              .join('\n'),
      );
    });
  for (const [name, what] of [
    ['describe', 'show a schedule: paused or not, why, recent and next runs'],
    ['pause', 'pause a schedule'],
    ['unpause', 'resume a paused schedule'],
    ['trigger', 'take a backup (or run a drill) now; skipped if one is running'],
    ['delete', 'delete a schedule (backups are kept)'],
  ] as const) {
    schedule
      .command(`${name} <cluster>`)
      .description(what)
      .option('--verify', "the cluster's restore drill schedule, not its backup schedule")
      .action(async (cluster: string, o: { verify?: boolean }, cmd: Command) => {
        const { g, backups, drills } = await connected(cmd);
        const s: ClusterSchedules = o.verify ? drills : backups;
        if (name === 'describe') {
          const d = await s.describe(cluster);
          print(g, d, () => JSON.stringify(d, null, 2));
          return;
        }
        await s[name](cluster);
        const id = o.verify ? DrillSchedules.scheduleId(cluster) : BackupSchedules.scheduleId(cluster);
        print(g, { [name]: id }, () => `${name}: ${id}`);
      });
  }
}
