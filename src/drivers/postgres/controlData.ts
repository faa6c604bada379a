// pg_controldata: what a stopped server's data directory says about itself (system identifier,
// timeline, last checkpoint, whether it was shut down cleanly). Offline backups and restore
// checks read it without a running server.
import { join } from 'node:path';
import { runCommand } from '../exec';

export interface ControlData {
  systemIdentifier: string;
  state: string;
  /** True when the server was shut down cleanly ("shut down" or "shut down in recovery"). */
  cleanShutdown: boolean;
  checkpointLsn: string;
  redoLsn: string;
  timeline: number;
  checkpointTime: string;
  pgVersion: string;
}

export function parseControlData(text: string): ControlData {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const need = (name: string) => {
    const value = fields.get(name);
    if (value === undefined) throw new Error(`pg_controldata printed no "${name}"`);
    return value;
  };
  const state = need('Database cluster state');
  return {
    systemIdentifier: need('Database system identifier'),
    state,
    cleanShutdown: state === 'shut down' || state === 'shut down in recovery',
    checkpointLsn: need('Latest checkpoint location'),
    redoLsn: need("Latest checkpoint's REDO location"),
    timeline: Number(need("Latest checkpoint's TimeLineID")),
    checkpointTime: need('Time of latest checkpoint'),
    pgVersion: need('pg_control version number'),
  };
}

export async function readControlData(binDir: string, pgdata: string, osUser: string): Promise<ControlData> {
  const result = await runCommand(join(binDir, 'pg_controldata'), ['-D', pgdata], {
    asUser: osUser,
    env: { ...process.env, LC_ALL: 'C' },
    timeoutMs: 30_000,
  });
  if (result.code !== 0)
    throw new Error(`pg_controldata -D ${pgdata} failed: ${(result.stderr || result.stdout).trim()}`);
  return parseControlData(result.stdout);
}
