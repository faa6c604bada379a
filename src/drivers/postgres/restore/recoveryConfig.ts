// What a restored data directory needs before start-up (docs/runbooks/rollback-restore.md): the stored label as
// backup_label (and tablespace_map), and, to replay archived WAL, recovery.signal with
// restore_command, exactly one recovery target and the action at the target. The settings go
// into postgresql.auto.conf, which PostgreSQL reads last; they are removed once recovery ends.
import type { Client } from 'pg';
import { recoveryTargetSetting, recoveryTargetTimeSetting, recoveryTargetValue } from '../../../common/recoveryTarget';
import { plainPathProblem } from '../../../common/shellPaths';
import type { RecoveryTimeline, RestoreTarget } from '../../../contract/recovery';

/** Every setting a restore may write; all are reset after recovery (and before a new restore). */
export const RESTORE_SETTINGS = [
  'restore_command',
  'recovery_target',
  'recovery_target_xid',
  'recovery_target_time',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_inclusive',
  'recovery_target_action',
  'recovery_target_timeline',
] as const;

export interface RecoveryFiles {
  /** Files to write into PGDATA (name → content). */
  write: Record<string, string>;
  /** Files to remove from PGDATA if present. */
  remove: string[];
  /** postgresql.auto.conf settings (RESTORE_SETTINGS not named here are removed). */
  settings: Record<string, string>;
}

export interface RecoveryPlan {
  labelfile?: string;
  spcmapfile?: string;
  /** The WAL archive directory on the server's host, read with cp (restore_command). */
  walArchive?: string;
  target?: RestoreTarget;
  inclusive: boolean;
  action: 'promote' | 'pause';
  /**
   * Default: 'current' for 'immediate' (consistency is reached on the backup's own timeline), else
   * 'latest' (PostgreSQL's default). A restore that went back to an older timeline (the undo of a
   * restore) leaves newer timelines in the archive that the backup's history does not lead to:
   * following 'latest' then stops with "requested timeline is not a child of this server's history".
   */
  timeline?: RecoveryTimeline;
}

export function recoveryFiles(plan: RecoveryPlan): RecoveryFiles {
  const write: Record<string, string> = {};
  // A stale pid file from the snapshot of a running server would make pg_ctl think it still runs.
  const remove = ['postmaster.pid', 'backup_label', 'tablespace_map', 'recovery.signal', 'standby.signal'];
  if (plan.labelfile) write.backup_label = plan.labelfile;
  if (plan.spcmapfile) write.tablespace_map = plan.spcmapfile;
  const settings: Record<string, string> = {};
  if (plan.target !== undefined) {
    if (!plan.walArchive) throw new Error('replaying to a recovery target needs the WAL archive (catalog walArchive)');
    const problem = plainPathProblem(plan.walArchive, 'restore_command');
    if (problem) throw new Error(`walArchive ${problem}`);
    write['recovery.signal'] = '';
    settings.restore_command = `cp ${plan.walArchive}/%f %p`;
    if (plan.target === 'immediate') {
      settings.recovery_target = 'immediate';
    } else {
      const value =
        'time' in plan.target ? recoveryTargetTimeSetting(plan.target.time) : recoveryTargetValue(plan.target);
      settings[recoveryTargetSetting(plan.target)] = value;
      settings.recovery_target_inclusive = plan.inclusive ? 'on' : 'off';
    }
    settings.recovery_target_action = plan.action;
    settings.recovery_target_timeline = String(plan.timeline ?? (plan.target === 'immediate' ? 'current' : 'latest'));
  }
  return { write, remove: remove.filter((name) => !(name in write)), settings };
}

function quoteConf(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** postgresql.auto.conf with every restore setting removed, then `settings` appended. */
export function editAutoConf(text: string, settings: Record<string, string>): string {
  const managed = new Set<string>(RESTORE_SETTINGS);
  const kept = text
    .split('\n')
    .filter((line) => !managed.has(line.split('=')[0]?.trim().toLowerCase() ?? ''))
    .join('\n')
    .trimEnd();
  const added = Object.entries(settings).map(([name, value]) => `${name} = ${quoteConf(value)}`);
  return `${[kept, ...added].filter((l) => l.length > 0).join('\n')}\n`;
}

/** After recovery ended: removes the restore settings so a later restart does not recover again. */
export async function clearRestoreSettings(client: Client): Promise<string[]> {
  const present = (
    await client.query<{ name: string }>(
      "SELECT DISTINCT name FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' AND name = ANY($1)",
      [RESTORE_SETTINGS],
    )
  ).rows.map((r) => r.name);
  // Names come from the constant list above, never from input.
  for (const name of present) await client.query(`ALTER SYSTEM RESET ${name}`);
  if (present.length > 0) await client.query('SELECT pg_reload_conf()');
  return present;
}
