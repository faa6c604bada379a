// Files inside a stopped server's data directory (backup_label, recovery.signal,
// postgresql.auto.conf), written as the directory's owner with PostgreSQL's modes, and what
// pg_controldata says of it. Local targets do it on the worker; a Kubernetes target through a
// helper pod that mounts the claims (see kube/helperPod.ts).
import { chownSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { LocalTarget } from '../../config/schema';
import { parseControlData, readControlData, type ControlData } from '../postgres/controlData';
import type { HelperPod } from '../kube/helperPod';

export interface DataDirectoryFiles {
  read(name: string): Promise<string | undefined>;
  write(name: string, content: string): Promise<void>;
  remove(name: string): Promise<void>;
  /**
   * Removes the WAL segment and backup history files in pg_wal and their archive status: before
   * archive recovery (PostgreSQL's PITR procedure). They came with the snapshot and are in the
   * archive already; left there, each is marked .ready again and the archiver tries, for ever, to
   * archive a file the archive already holds.
   */
  clearWal(): Promise<number>;
}

/**
 * Segment files, the .partial of a timeline switch and backup history files (.backup) in pg_wal:
 * without their archive status, a checkpoint marks each .ready again.
 */
const WAL_FILE = /^[0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?$/;

/** A stopped server's data directory, as the restore and offline snapshot steps need it. */
export interface StoppedDataDirectory {
  files: DataDirectoryFiles;
  controlData(): Promise<ControlData>;
}

/** Names are PostgreSQL's own file names, never input: still, no path may leave PGDATA. */
function checkName(name: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.'))
    throw new Error(`refusing data directory file name ${JSON.stringify(name)}`);
}

export function localDataDirectory(target: LocalTarget): StoppedDataDirectory {
  const { pgdata } = target;
  return {
    controlData: () => readControlData(target.binDir, pgdata, target.osUser),
    files: {
      async read(name) {
        checkName(name);
        const path = join(pgdata, name);
        return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
      },
      async write(name, content) {
        checkName(name);
        const owner = statSync(pgdata);
        const path = join(pgdata, name);
        const temp = `${path}.pgops-tmp`;
        writeFileSync(temp, content, { mode: 0o600 });
        if (process.getuid?.() === 0) chownSync(temp, owner.uid, owner.gid);
        renameSync(temp, path);
      },
      async remove(name) {
        checkName(name);
        rmSync(join(pgdata, name), { force: true });
      },
      async clearWal() {
        // pg_wal may be a symbolic link to a WAL volume: the directory it points to is cleared.
        const wal = join(pgdata, 'pg_wal');
        let removed = 0;
        for (const name of readdirSync(wal)) {
          if (!WAL_FILE.test(name)) continue;
          rmSync(join(wal, name), { force: true });
          removed++;
        }
        const status = join(wal, 'archive_status');
        if (existsSync(status)) for (const name of readdirSync(status)) rmSync(join(status, name), { force: true });
        return removed;
      },
    },
  };
}

/**
 * Writes $2 into the file $1 through a temporary file and a rename, mode 0600, owned like the
 * directory when run as root. A constant script: the path and the content are its arguments,
 * never part of the script, so nothing from input is parsed by the shell.
 */
const WRITE_FILE_SCRIPT =
  'set -e; t="$1.pgops-tmp"; printf %s "$2" > "$t"; chmod 600 "$t"; ' +
  'if [ "$(id -u)" = 0 ]; then chown --reference="$(dirname "$1")" "$t"; fi; mv -f "$t" "$1"';

/** What helperDataDirectory needs of a pod mounting the data directory: the helper pod, or a scratch pod. */
export type DataDirectoryPod = Pick<HelperPod, 'name' | 'exec' | 'run'> & { layout: { pgdata: string } };

export function helperDataDirectory(helper: DataDirectoryPod, signal?: AbortSignal): StoppedDataDirectory {
  const { pgdata } = helper.layout;
  const path = (name: string) => {
    checkName(name);
    return posix.join(pgdata, name);
  };
  return {
    async controlData() {
      return parseControlData(await helper.run(['env', 'LC_ALL=C', 'pg_controldata', '-D', pgdata], { signal }));
    },
    files: {
      async read(name) {
        const result = await helper.exec(['cat', '--', path(name)], { signal });
        if (result.code === 0) return result.stdout;
        if (/No such file/.test(result.stderr)) return undefined;
        throw new Error(`cat ${path(name)} in pod ${helper.name} failed: ${result.stderr.trim()}`);
      },
      async write(name, content) {
        await helper.run(['sh', '-c', WRITE_FILE_SCRIPT, 'pgops-write', path(name), content], { signal });
      },
      async remove(name) {
        await helper.run(['rm', '-f', '--', path(name)], { signal });
      },
      async clearWal() {
        const wal = posix.join(pgdata, 'pg_wal');
        // The StatefulSet's own image: plain find options only. The trailing '/' follows a pg_wal symlink.
        const segment = `${'[0-9A-F]'.repeat(24)}`;
        const found = await helper.run(
          [
            'find',
            `${wal}/`,
            '-maxdepth',
            '1',
            '-type',
            'f',
            '(',
            '-name',
            segment,
            '-o',
            '-name',
            `${segment}.partial`,
            ')',
            '-print',
            '-delete',
          ],
          { signal },
        );
        await helper.run(['find', `${posix.join(wal, 'archive_status')}/`, '-type', 'f', '-delete'], { signal });
        return found.split('\n').filter((l) => l.trim()).length;
      },
    },
  };
}
