// Rebuilds a local replica from its primary (pg_basebackup) while keeping the replica's own
// configuration: its postgresql.conf and included files, postgresql.auto.conf (the delay, the
// restore_command), pg_hba.conf and standby.signal. Used after an in-place restore of the primary
// forked its history before the point the replica had already replayed: such a replica can never
// follow the new timeline. Resumable: the replica's configuration is saved first beside PGDATA
// with a state file; a run that finds it goes on from the state it names.
import {
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { LocalTarget } from '../../config/schema';
import type { PgEndpoint } from '../postgres/session';
import { runCommand } from '../exec';
import { pauseForTests } from '../testPause';
import { LocalClusterDriver } from './local';
import { withoutTimelineSetting } from '../postgres/replica/replicaTimeline';

interface RebuildState {
  phase: 'saved' | 'cloned';
  files: string[];
  /** Where pg_wal pointed, when it was a link to a WAL volume. */
  walDir?: string;
}

/** The files of PGDATA that are the replica's own configuration, not data. */
function ownConfigFiles(pgdata: string): string[] {
  return readdirSync(pgdata).filter(
    (name) => name.endsWith('.conf') || name === 'standby.signal' || name === 'recovery.signal',
  );
}

/** A rebuild of this replica began and did not finish (a worker died in it): the next one goes on from it. */
export function rebuildInProgress(replica: LocalTarget): boolean {
  return existsSync(join(`${replica.pgdata}.pgops-rebuild`, 'state.json'));
}

export async function rebuildLocalReplica(
  replica: LocalTarget,
  primary: PgEndpoint,
  opts: { onProgress?: (detail: string) => void; signal?: AbortSignal } = {},
): Promise<{ ms: number; keptFiles: string[] }> {
  const started = Date.now();
  const { pgdata } = replica;
  const saved = `${pgdata}.pgops-rebuild`;
  const stateFile = join(saved, 'state.json');
  const driver = new LocalClusterDriver(replica);
  const owner = statSync(pgdata);
  const asOwner = (path: string) => {
    if (process.getuid?.() === 0) chownSync(path, owner.uid, owner.gid);
  };
  const writeState = (state: RebuildState) => writeFileSync(stateFile, JSON.stringify(state));

  // A retry after a crash in the copy finds PGDATA half built, and no server on it.
  if (existsSync(join(pgdata, 'PG_VERSION'))) {
    opts.onProgress?.('stopping the replica');
    await driver.stop({ onProgress: opts.onProgress });
  }
  let state: RebuildState | undefined = existsSync(stateFile)
    ? (JSON.parse(readFileSync(stateFile, 'utf8')) as RebuildState)
    : undefined;
  if (!state) {
    // Saved once, before anything is removed: a retry finds them here, not in a half-built PGDATA.
    rmSync(saved, { recursive: true, force: true });
    mkdirSync(saved, { mode: 0o700 });
    const files = ownConfigFiles(pgdata);
    for (const name of files) copyFileSync(join(pgdata, name), join(saved, name));
    const wal = join(pgdata, 'pg_wal');
    const walDir = existsSync(wal) && lstatSync(wal).isSymbolicLink() ? realpathSync(wal) : undefined;
    writeState((state = { phase: 'saved', files, walDir }));
  }
  await pauseForTests('rebuild-replica-saved', opts.signal);
  if (state.phase === 'saved') {
    opts.onProgress?.(`copying the primary ${primary.host}:${primary.port} into ${pgdata} (pg_basebackup)`);
    // PGDATA itself stays (its mode and owner), emptied for pg_basebackup; a WAL volume too.
    for (const name of readdirSync(pgdata)) rmSync(join(pgdata, name), { recursive: true, force: true });
    const { walDir } = state;
    if (walDir && existsSync(walDir))
      for (const name of readdirSync(walDir)) rmSync(join(walDir, name), { recursive: true, force: true });
    const copy = await runCommand(
      join(replica.binDir, 'pg_basebackup'),
      [
        '-h',
        primary.host,
        '-p',
        String(primary.port),
        '-U',
        primary.user,
        '-D',
        pgdata,
        '-X',
        'stream',
        '-c',
        'fast',
        '--no-password',
        ...(walDir ? ['--waldir', walDir] : []),
      ],
      {
        asUser: replica.osUser,
        signal: opts.signal,
        env: { ...process.env, ...(primary.password ? { PGPASSWORD: primary.password } : {}) },
      },
    );
    if (copy.code !== 0)
      throw new Error(
        `pg_basebackup from ${primary.host}:${primary.port} into ${pgdata} failed (exit ${copy.code}): ${(copy.stderr || copy.stdout).trim()}`,
      );
    writeState((state = { ...state, phase: 'cloned' }));
  }
  await pauseForTests('rebuild-replica-cloned', opts.signal);
  for (const name of state.files) {
    copyFileSync(join(saved, name), join(pgdata, name));
    asOwner(join(pgdata, name));
  }
  const autoConf = join(pgdata, 'postgresql.auto.conf');
  if (existsSync(autoConf)) writeFileSync(autoConf, withoutTimelineSetting(readFileSync(autoConf, 'utf8')));
  if (!existsSync(join(pgdata, 'standby.signal'))) {
    writeFileSync(join(pgdata, 'standby.signal'), '');
    asOwner(join(pgdata, 'standby.signal'));
  }
  opts.onProgress?.('starting the rebuilt replica');
  await driver.start(1, { onProgress: opts.onProgress, signal: opts.signal });
  rmSync(saved, { recursive: true, force: true });
  return { ms: Date.now() - started, keptFiles: state.files };
}
