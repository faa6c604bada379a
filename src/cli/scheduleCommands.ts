// `pgops schedule …`: scheduled backups (Temporal Schedules, src/client/backupSchedules.ts).
import type { Command } from 'commander';
import { BackupSchedules } from '../client/backupSchedules';
import { keepOption } from './operationCommands';
import { connect, globals, print } from './run';

/** `schedule create|list|describe|pause|unpause|trigger|delete`: scheduled backups. */
export function addScheduleCommands(program: Command): void {
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
      const id = await s.create({ cluster, cron: o.cron, mode: o.offline ? 'offline' : 'online', keep: keepOption(o) });
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
}
