// Setting, clearing and checking a recovery target on a paused delayed replica (docs/runbooks/delayed-replica-pitr.md
// steps 2–4 and 7). Settings go through ALTER SYSTEM, which works on a standby and writes
// postgresql.auto.conf: that file wins over postgresql.conf and include files, so leftovers there
// are always reset. Targets need a restart to take effect; the caller restarts.
import type { Client } from 'pg';
import {
  recoveryTargetProblem,
  recoveryTargetSetting,
  recoveryTargetTimeSetting,
  recoveryTargetValue,
  type RecoveryTarget,
} from '../../../common/recoveryTarget';
import {
  NotAReplicaError,
  readReplayStatus,
  RECOVERY_TARGET_SETTINGS,
  settingAsInput,
  type SettingWithSource,
} from './replayControl';
import { withSession, type PgEndpoint } from '../session';
import { isReadAheadRestoreCommand, readAheadRestoreCommand } from '../archive/walReadAhead';

export type { RecoveryTarget } from '../../../common/recoveryTarget';

const TARGET_SETTINGS = RECOVERY_TARGET_SETTINGS;
/**
 * The delay as it was before the first applyRecoveryTarget, kept in postgresql.auto.conf next to
 * the target: a retried apply (after the restart made delay=0 the running value) still returns
 * the original, so a delayed replica never silently stops being delayed.
 */
const SAVED_DELAY_SETTING = 'pgops.saved_recovery_min_apply_delay';
/** The replica's own recovery_target_timeline in postgresql.auto.conf while a PITR's stands there. */
const SAVED_TIMELINE_SETTING = 'pgops.saved_recovery_target_timeline';
/** The replica's own restore_command while the read-ahead's stands in front of it (walReadAhead.ts). */
const SAVED_RESTORE_COMMAND_SETTING = 'pgops.saved_restore_command';

async function alterSystem(client: Client, name: string, value: string | undefined): Promise<void> {
  // ALTER SYSTEM only knows parameters this session knows: a custom one must exist as a
  // placeholder first, which set_config creates for the session.
  if (name.includes('.')) await client.query("SELECT set_config($1, '', false)", [name]);
  // ALTER SYSTEM takes no bind parameters; names are constants here and values are validated
  // before they get here, and quoted by the driver's escapeLiteral all the same.
  await client.query(
    value === undefined ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = ${client.escapeLiteral(value)}`,
  );
}

/**
 * postgresql.auto.conf as it is now, in one read (pg_file_settings re-reads the files):
 * - `written`: the settings pg_file_settings reports without an error;
 * - `inFile`: every setting in the file, including those marked with an error (a value that
 *   waits for a restart): what ALTER SYSTEM would have to RESET or overwrite. Each ALTER SYSTEM
 *   rewrites and fsyncs the file (tens of milliseconds on a slow disk), so the writes below skip
 *   what the file already says.
 */
async function autoConf(client: Client): Promise<{ written: Map<string, string>; inFile: Map<string, string> }> {
  const rows = (
    await client.query<{ name: string; setting: string | null; error: string | null }>(
      "SELECT name, setting, error FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno",
    )
  ).rows;
  return {
    written: new Map(rows.filter((r) => r.error === null).map((r) => [r.name, r.setting ?? ''])),
    inFile: new Map(rows.map((r) => [r.name, r.setting ?? ''])),
  };
}

/**
 * The recovery settings whose value in the configuration files differs from the one in force, so
 * that only a restart applies them: written with a new value (pg_file_settings reports it "could
 * not be applied"), or removed from the files while the value in force came from them. Read
 * without pg_reload_conf(): a reload wakes a startup process that waits out the apply delay, it
 * then pauses for real, and a paused startup process notices a shutdown request only after up to
 * a second (its pause loop sleeps a second at a time), which every restart would then pay.
 */
export async function settingsAwaitingRestart(client: Client): Promise<string[]> {
  const rows = (
    await client.query<{ name: string }>(
      `SELECT DISTINCT name FROM pg_file_settings
        WHERE name LIKE 'recovery%' AND error = 'setting could not be applied'
       UNION
       SELECT s.name FROM pg_settings s
        WHERE s.name LIKE 'recovery%' AND s.context = 'postmaster' AND s.source = 'configuration file'
          AND NOT EXISTS (SELECT 1 FROM pg_file_settings f WHERE f.name = s.name)
       ORDER BY 1`,
    )
  ).rows;
  return rows.map((r) => r.name);
}

async function requireReplica(client: Client, endpoint: PgEndpoint): Promise<void> {
  const recovering = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r;
  if (!recovering) throw new NotAReplicaError(endpoint);
}

/**
 * Writes one recovery target with recovery_target_action = 'pause' and recovery_min_apply_delay
 * = 0, resetting every other recovery_target_*. Returns the delay setting from before the first
 * call (value, source, file) for clearRecoveryTarget. Refuses unless replay is paused: a reload
 * of delay=0 while replay runs would apply the held-back bad commit at once.
 */
export async function applyRecoveryTarget(
  endpoint: PgEndpoint,
  target: RecoveryTarget,
  inclusive: boolean,
  /** Puts the read-ahead's restore_command in front of the replica's own (walReadAhead.ts). */
  readAhead?: { stageDir: string },
  /** A branch the replica does not follow (replicaTargetTimeline.ts), from the archive, never input. */
  timeline?: number,
): Promise<SettingWithSource> {
  if (timeline !== undefined && !(Number.isInteger(timeline) && timeline >= 1))
    throw new Error(`refusing to set recovery_target_timeline to ${timeline}: not a timeline number`);
  const problem = recoveryTargetProblem(target);
  if (problem) throw new Error(`refusing to set a recovery target on ${endpoint.host}:${endpoint.port}: ${problem}`);
  const wanted = new Map<string, string>([
    [
      recoveryTargetSetting(target),
      'time' in target ? recoveryTargetTimeSetting(target.time) : recoveryTargetValue(target),
    ],
    ['recovery_target_inclusive', inclusive ? 'on' : 'off'],
    ['recovery_target_action', 'pause'],
    ['recovery_min_apply_delay', '0'],
  ]);
  if (timeline !== undefined) wanted.set('recovery_target_timeline', String(timeline));
  return withSession(endpoint, async (client) => {
    await requireReplica(client, endpoint);
    const status = await readReplayStatus(client);
    const { written, inFile } = await autoConf(client);
    const saved = written.get(SAVED_DELAY_SETTING);
    const previous: SettingWithSource = saved
      ? (JSON.parse(saved) as SettingWithSource)
      : status.settings.recovery_min_apply_delay;
    const alreadyWritten =
      saved !== undefined &&
      [...wanted].every(([name, value]) => written.get(name) === value) &&
      TARGET_SETTINGS.every((name) => name === recoveryTargetSetting(target) || !written.has(name));
    if (alreadyWritten) {
      if (readAhead) await applyReadAheadRestoreCommand(client, readAhead.stageDir, written);
      return previous;
    }
    if (status.pauseState === 'not paused' && status.settings.recovery_min_apply_delay.value !== '0') {
      throw new Error(
        `replay on ${endpoint.host}:${endpoint.port} is not paused: pause it first (pauseReplay). Writing recovery_min_apply_delay = 0 while replay runs would apply the held-back commits, including the bad one, at the next reload`,
      );
    }
    if (saved === undefined) await alterSystem(client, SAVED_DELAY_SETTING, JSON.stringify(previous));
    // The replica's own recovery_target_timeline line ('' for none), put back by clearRecoveryTarget.
    if (timeline !== undefined && !written.has(SAVED_TIMELINE_SETTING))
      await alterSystem(client, SAVED_TIMELINE_SETTING, JSON.stringify(inFile.get('recovery_target_timeline') ?? ''));
    for (const name of TARGET_SETTINGS)
      if (name !== recoveryTargetSetting(target) && inFile.has(name)) await alterSystem(client, name, undefined);
    if (readAhead) await applyReadAheadRestoreCommand(client, readAhead.stageDir, written);
    // The delay goes last: until then a reload changes nothing, and replay is paused anyway.
    for (const [name, value] of wanted) if (inFile.get(name) !== value) await alterSystem(client, name, value);
    return previous;
  });
}

interface SavedRestoreCommand {
  value: string;
  sourcefile: string | null;
}

/**
 * Writes the read-ahead's restore_command (the replica's own behind it), saving the replica's
 * own first. Leaves everything as it is when the replica restores nothing from an archive or
 * the staging path cannot go into a shell string.
 */
async function applyReadAheadRestoreCommand(
  client: Client,
  stageDir: string,
  written: Map<string, string>,
): Promise<void> {
  const savedText = written.get(SAVED_RESTORE_COMMAND_SETTING);
  let saved: SavedRestoreCommand | undefined;
  if (savedText !== undefined) saved = JSON.parse(savedText) as SavedRestoreCommand;
  else {
    const row = (
      await client.query<{ setting: string; sourcefile: string | null }>(
        "SELECT setting, sourcefile FROM pg_settings WHERE name = 'restore_command'",
      )
    ).rows[0];
    // Without the file it came from (a role that may not see it), putting it back could not
    // tell SET from RESET: no read-ahead then.
    if (row && row.sourcefile !== null && !isReadAheadRestoreCommand(row.setting))
      saved = { value: row.setting, sourcefile: row.sourcefile };
  }
  if (!saved) return;
  const command = readAheadRestoreCommand(stageDir, saved.value);
  if (!command) return;
  if (savedText === undefined) await alterSystem(client, SAVED_RESTORE_COMMAND_SETTING, JSON.stringify(saved));
  if (written.get('restore_command') !== command) await alterSystem(client, 'restore_command', command);
}

/**
 * Puts the replica's own restore_command back after a read-ahead (SET when it came from
 * postgresql.auto.conf, otherwise RESET) and, with `reload`, applies it at once (restore_command
 * takes a reload). Idempotent; does nothing when no read-ahead command was written.
 */
export async function restoreOwnRestoreCommand(
  client: Client,
  reload: boolean,
  /** postgresql.auto.conf as the caller read it already (autoConf), else read here. */
  written?: Map<string, string>,
): Promise<boolean> {
  const savedText = (written ?? (await autoConf(client)).written).get(SAVED_RESTORE_COMMAND_SETTING);
  if (savedText === undefined) return false;
  const saved = JSON.parse(savedText) as SavedRestoreCommand;
  if (saved.sourcefile?.endsWith('postgresql.auto.conf')) await alterSystem(client, 'restore_command', saved.value);
  else await alterSystem(client, 'restore_command', undefined);
  await alterSystem(client, SAVED_RESTORE_COMMAND_SETTING, undefined);
  if (reload) await client.query('SELECT pg_reload_conf()');
  return true;
}

/**
 * Removes every recovery target setting and restores the delay: SET back when it came from
 * postgresql.auto.conf, otherwise RESET so the configuration file's value applies again.
 * Without `originalDelay` the copy saved by applyRecoveryTarget is used. Idempotent; needs a restart.
 */
export async function clearRecoveryTarget(
  endpoint: PgEndpoint,
  originalDelay?: SettingWithSource,
): Promise<{ recoveryMinApplyDelay: string }> {
  return withSession(endpoint, async (client) => {
    const { written, inFile } = await autoConf(client);
    const saved = written.get(SAVED_DELAY_SETTING);
    const original = originalDelay ?? (saved ? (JSON.parse(saved) as SettingWithSource) : undefined);
    for (const name of [...TARGET_SETTINGS, 'recovery_target_inclusive', 'recovery_target_action'])
      if (inFile.has(name)) await alterSystem(client, name, undefined);
    const savedTimeline = written.get(SAVED_TIMELINE_SETTING);
    if (savedTimeline !== undefined) {
      const own = JSON.parse(savedTimeline) as string;
      await alterSystem(client, 'recovery_target_timeline', own === '' ? undefined : own);
      await alterSystem(client, SAVED_TIMELINE_SETTING, undefined);
    }
    let restored = 'the configuration file value (RESET)';
    if (original?.sourcefile?.endsWith('postgresql.auto.conf')) {
      const value = settingAsInput(original);
      if (!/^\d+(ms|s|min|h|d)?$/.test(value))
        throw new Error(
          `the saved recovery_min_apply_delay ${JSON.stringify(value)} is not a duration; set it by hand`,
        );
      await alterSystem(client, 'recovery_min_apply_delay', value);
      restored = value;
    } else {
      await alterSystem(client, 'recovery_min_apply_delay', undefined);
    }
    await alterSystem(client, SAVED_DELAY_SETTING, undefined);
    await restoreOwnRestoreCommand(client, false, written);
    return { recoveryMinApplyDelay: restored };
  });
}
