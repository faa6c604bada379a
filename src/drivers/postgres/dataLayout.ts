// Which directories hold a database: PGDATA, pg_wal when it is a symbolic link to another
// volume (initdb --waldir), and each tablespace (pg_tblspc/<oid> links). A backup that missed
// one of them would restore a database that cannot start.
import { existsSync, lstatSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { DatabaseVolume } from '../../contract/backups';

export function databaseVolumes(pgdata: string): DatabaseVolume[] {
  const volumes: DatabaseVolume[] = [{ role: 'data', path: pgdata }];
  const walLink = join(pgdata, 'pg_wal');
  if (existsSync(walLink) && lstatSync(walLink).isSymbolicLink()) {
    volumes.push({ role: 'wal', path: realpathSync(walLink) });
  }
  const tblspc = join(pgdata, 'pg_tblspc');
  if (existsSync(tblspc)) {
    for (const oid of readdirSync(tblspc).sort()) {
      const link = join(tblspc, oid);
      if (!lstatSync(link).isSymbolicLink()) continue; // in-place tablespaces (allow_in_place_tablespaces) live in PGDATA
      const target = readlinkSync(link);
      volumes.push({ role: 'tablespace', oid, path: isAbsolute(target) ? target : realpathSync(link) });
    }
  }
  return volumes;
}

/** A volume inside another one would be snapshotted twice and rolled back in the wrong order. */
export function nestedVolumeProblem(volumes: DatabaseVolume[]): string | undefined {
  for (const inner of volumes) {
    for (const outer of volumes) {
      if (inner === outer) continue;
      const rel = relative(outer.path, inner.path);
      if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)))
        return `${inner.role} directory ${inner.path} lies inside the ${outer.role} directory ${outer.path}`;
    }
  }
  return undefined;
}
