// Files inside a stopped server's data directory (backup_label, recovery.signal,
// postgresql.auto.conf), written as the directory's owner with PostgreSQL's modes. Local targets
// write on the worker; a Kubernetes target needs a helper pod that mounts the PVC.
import { chownSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DataDirectoryFiles {
  read(name: string): string | undefined;
  write(name: string, content: string): void;
  remove(name: string): void;
}

/** Names are PostgreSQL's own file names, never input: still, no path may leave PGDATA. */
function checkName(name: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.'))
    throw new Error(`refusing data directory file name ${JSON.stringify(name)}`);
}

export function localDataDirectory(pgdata: string): DataDirectoryFiles {
  return {
    read(name) {
      checkName(name);
      const path = join(pgdata, name);
      return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    },
    write(name, content) {
      checkName(name);
      const owner = statSync(pgdata);
      const path = join(pgdata, name);
      const temp = `${path}.pgops-tmp`;
      writeFileSync(temp, content, { mode: 0o600 });
      if (process.getuid?.() === 0) chownSync(temp, owner.uid, owner.gid);
      renameSync(temp, path);
    },
    remove(name) {
      checkName(name);
      rmSync(join(pgdata, name), { force: true });
    },
  };
}
