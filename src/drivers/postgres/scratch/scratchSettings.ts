// What makes a clone of a backup a scratch instance that cannot reach production: settings written
// after the recovery settings in postgresql.auto.conf (read last, so they win over postgresql.conf),
// and the clone's links into the cluster's own volumes (pg_wal, pg_tblspc/<oid>, tablespace_map)
// pointed at the clone's copies instead. A scratch server left with a link into production would
// write into the production tablespace; one left with archive_mode on would write into the archive.
import { isAbsolute, relative } from 'node:path';
import { editAutoConf, recoveryFiles, type RecoveryFiles, type RecoveryPlan } from '../restore/recoveryConfig';
import type { ScratchRecovery, ScratchVolume } from '../../../contract/scratch';

export interface ScratchServerOptions {
  port: number;
  listenAddresses: string;
  sharedBuffers: string;
  /** The directory of the server's Unix socket (default: PostgreSQL's own default). */
  socketDirectory?: string;
  /** cluster_name, shown in ps and the log. */
  name: string;
  /** default_transaction_read_only (default true). */
  readOnly?: boolean;
}

/**
 * Settings every scratch server runs with. Each one closes a way back to production or out of the
 * scratch: no archiving (the archive is read by restore_command only), no archive cleanup (a
 * standby's archive_cleanup_command would delete from the production archive at each restartpoint),
 * no streaming from a primary, no logical replication workers (a promoted copy of a subscriber would
 * consume the publisher's slot), no synchronous standbys to wait for (a promoted copy would hang its
 * writes), its own port and cluster name, and a modest shared_buffers (production's may not fit beside it).
 */
export function scratchServerSettings(opts: ScratchServerOptions): Record<string, string> {
  return {
    archive_mode: 'off',
    archive_command: '',
    archive_library: '',
    archive_cleanup_command: '',
    recovery_end_command: '',
    primary_conninfo: '',
    primary_slot_name: '',
    max_logical_replication_workers: '0',
    synchronous_standby_names: '',
    hot_standby: 'on',
    port: String(opts.port),
    listen_addresses: opts.listenAddresses,
    shared_buffers: opts.sharedBuffers,
    cluster_name: opts.name,
    logging_collector: 'off',
    // Read-only sessions by default: a preview or an export never writes, even on a copy that has
    // left recovery; the drill's checks that must write (CREATE EXTENSION amcheck) set it off.
    default_transaction_read_only: opts.readOnly === false ? 'off' : 'on',
    ...(opts.socketDirectory !== undefined && { unix_socket_directories: opts.socketDirectory }),
  };
}

/** Names of the settings above: removed from postgresql.auto.conf before they are written again. */
export const SCRATCH_SETTING_NAMES = Object.keys(
  scratchServerSettings({ port: 1, listenAddresses: '', sharedBuffers: '', name: '', socketDirectory: '' }),
);

/** The recovery a scratch instance runs: as a restore's (recoveryFiles), with its own target kinds. */
export function scratchRecoveryFiles(
  recovery: ScratchRecovery,
  backup: { mode: 'online' | 'offline'; labelfile?: string; spcmapfile?: string },
  walArchive: string | undefined,
): RecoveryFiles {
  const plan: RecoveryPlan = {
    labelfile: backup.mode === 'online' ? backup.labelfile : undefined,
    spcmapfile: backup.mode === 'online' ? backup.spcmapfile : undefined,
    walArchive,
    inclusive: recovery.inclusive,
    action: recovery.action,
    timeline: recovery.timeline,
  };
  if (recovery.target === 'end') {
    // Through the whole archive: recovery.signal and restore_command with no target.
    const files = recoveryFiles({ ...plan, target: 'immediate' });
    const settings = { ...files.settings };
    delete settings.recovery_target;
    delete settings.recovery_target_action;
    return { ...files, settings: { ...settings, recovery_target_timeline: String(recovery.timeline) } };
  }
  if (backup.mode === 'offline' && recovery.target === 'immediate' && !walArchive)
    return recoveryFiles({ ...plan, target: undefined });
  return recoveryFiles({ ...plan, target: recovery.target });
}

/**
 * `path` (a link target in the cloned data directory, or a tablespace_map path) moved from the
 * cluster's volume it lies on to the same place in that volume's clone. Undefined when it lies on
 * none of the cloned volumes: a link the clone cannot follow without reaching production.
 */
export function remapToClone(path: string, volumes: readonly ScratchVolume[]): string | undefined {
  let best: { volume: ScratchVolume; rest: string } | undefined;
  for (const volume of volumes) {
    const rest = relative(volume.source, path);
    if (rest.startsWith('..') || isAbsolute(rest)) continue;
    if (!best || volume.source.length > best.volume.source.length) best = { volume, rest };
  }
  if (!best) return undefined;
  return best.rest === '' ? best.volume.path : `${best.volume.path}/${best.rest}`;
}

/**
 * tablespace_map with each tablespace's location moved to its clone. PostgreSQL recreates the
 * pg_tblspc links from this file when it starts from backup_label: left as it was, the scratch
 * server would write into the production tablespace. Throws when a location has no clone.
 */
export function remapTablespaceMap(spcmapfile: string, volumes: readonly ScratchVolume[]): string {
  return spcmapfile
    .split('\n')
    .map((line) => {
      if (line.trim() === '') return line;
      const space = line.indexOf(' ');
      const oid = line.slice(0, space);
      const location = line.slice(space + 1);
      const moved = remapToClone(location, volumes);
      if (!moved)
        throw new Error(
          `tablespace ${oid} at ${location} is not on any volume of the backup: a scratch server would write into it`,
        );
      return `${oid} ${moved}`;
    })
    .join('\n');
}

/** postgresql.auto.conf of the clone: earlier restore and scratch settings removed, then both written. */
export function scratchAutoConf(
  text: string,
  recoverySettings: Record<string, string>,
  serverSettings: Record<string, string>,
): string {
  const scratch = new Set(SCRATCH_SETTING_NAMES);
  const kept = text
    .split('\n')
    .filter((line) => !scratch.has(line.split('=')[0]?.trim().toLowerCase() ?? ''))
    .join('\n');
  return editAutoConf(kept, { ...recoverySettings, ...serverSettings });
}
