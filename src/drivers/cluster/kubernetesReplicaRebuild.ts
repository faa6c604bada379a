// Rebuilds a Kubernetes replica from its primary, as localReplicaRebuild.ts does on the worker:
// the replica's StatefulSet is scaled to 0, a helper pod (its own image, user and claims) saves
// the replica's configuration files beside PGDATA on the same volume, empties PGDATA, runs
// pg_basebackup from the primary's pod address, puts the configuration back (the delay, the
// restore_command, standby.signal) and the StatefulSet is started again. An annotation on the
// replica's StatefulSet says a rebuild is under way, and a state file on the volume how far it
// got: a retry after a worker crash finds the replica stopped and goes on from there.
import { posix } from 'node:path';
import type { KubernetesClusterDriver } from './kubernetes';
import { PermanentDriverError, type WaitOptions } from './types';
import { pauseForTests } from '../testPause';
import { helperDataDirectory } from './dataDirectory';
import { withoutTimelineSetting } from '../postgres/replica/replicaTimeline';

/** On the replica's StatefulSet while it is rebuilt: the primary it is copied from. */
export const REBUILD_ANNOTATION = 'pgops.temporal.io/rebuilding-from';

/** Where the primary is reached from inside the cluster, and as whom. */
export interface RebuildSource {
  host: string;
  port: number;
  user: string;
  password?: string;
}

/**
 * The rebuild's three phases, each a constant script run in the helper pod (arguments: PGDATA,
 * the saved directory, then host, port and user for the copy). $saved/state records the phase
 * done, so a retry skips what is done: saved (configuration kept), cloned (pg_basebackup done).
 */
const SAVE_SCRIPT = [
  'set -eu',
  'd="$1"; s="$2"',
  'if [ -f "$s/state" ]; then exit 0; fi',
  'rm -rf "$s"; mkdir -m 700 "$s"',
  'for f in "$d"/*.conf "$d"/standby.signal "$d"/recovery.signal; do if [ -f "$f" ]; then cp -p "$f" "$s/"; fi; done',
  'echo saved > "$s/state"',
].join('\n');
const COPY_SCRIPT = [
  'set -eu',
  'd="$1"; s="$2"',
  'if [ "$(cat "$s/state")" != saved ]; then exit 0; fi',
  'find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +',
  'pg_basebackup -h "$3" -p "$4" -U "$5" -D "$d" -X stream -c fast --no-password',
  'echo cloned > "$s/state"',
].join('\n');
const PUT_BACK_SCRIPT = [
  'set -eu',
  'd="$1"; s="$2"',
  'for f in "$s"/*.conf "$s"/standby.signal "$s"/recovery.signal; do if [ -f "$f" ]; then cp -p "$f" "$d/"; fi; done',
  'if [ ! -f "$d/standby.signal" ]; then : > "$d/standby.signal"; chmod 600 "$d/standby.signal"; fi',
  'ls "$s" | grep -v "^state$" || true',
  'rm -rf "$s"',
].join('\n');

/** A rebuild of this replica began and did not finish (a worker died in it). */
export async function kubernetesRebuildInProgress(replica: KubernetesClusterDriver): Promise<boolean> {
  return (await replica.annotation(REBUILD_ANNOTATION)) !== undefined;
}

export async function rebuildKubernetesReplica(
  replica: KubernetesClusterDriver,
  primaryName: string,
  source: RebuildSource,
  opts: WaitOptions & { pgBasebackupTimeoutMs?: number } = {},
): Promise<{ ms: number; keptFiles: string[] }> {
  const started = Date.now();
  const layout = await replica.layout();
  const { pgdata } = layout;
  const mount = layout.dataClaim.mountPath;
  // The saved files must outlive the emptying of PGDATA on the same volume: beside it, not in it.
  if (posix.normalize(pgdata) === posix.normalize(mount))
    throw new PermanentDriverError(
      `PGDATA ${pgdata} is the root of its volume (${layout.dataClaim.claim}): there is no place beside it on the volume to keep the replica's configuration while pg_basebackup fills PGDATA. Rebuild it by hand, or use a PGDATA in a subdirectory of the volume (as the postgres image's documentation advises)`,
    );
  const saved = posix.join(posix.dirname(pgdata), `.pgops-rebuild-${posix.basename(pgdata)}`);
  await replica.annotate(REBUILD_ANNOTATION, primaryName);
  opts.onProgress?.('stopping the replica (StatefulSet to 0)');
  const stopped = await replica.stop(opts);
  const replicas = stopped.alreadyStopped ? ((await replica.recordedReplicas()) ?? 1) : stopped.replicasBefore;
  const helper = await replica.helperPod();
  // Never one a crashed attempt left: its pg_basebackup may still be running in it.
  await helper.close(opts);
  opts.onProgress?.(`starting helper pod ${helper.name} on the replica's volumes`);
  await helper.open(opts);
  let kept: string;
  try {
    const run = (script: string, args: string[] = [], env: string[] = [], timeoutMs?: number) =>
      helper.run([...env, 'sh', '-c', script, 'pgops-rebuild', pgdata, saved, ...args], {
        signal: opts.signal,
        timeoutMs,
      });
    await run(SAVE_SCRIPT);
    await pauseForTests('rebuild-kubernetes-replica-saved', opts.signal);
    opts.onProgress?.(
      `copying the primary ${source.host}:${source.port} into ${pgdata} (pg_basebackup in the helper pod)`,
    );
    await run(
      COPY_SCRIPT,
      [source.host, String(source.port), source.user],
      source.password ? ['env', `PGPASSWORD=${source.password}`] : [],
      opts.pgBasebackupTimeoutMs ?? 6 * 3600_000,
    );
    await pauseForTests('rebuild-kubernetes-replica-cloned', opts.signal);
    kept = await run(PUT_BACK_SCRIPT);
    const files = helperDataDirectory(helper, opts.signal).files;
    const autoConf = await files.read('postgresql.auto.conf');
    if (autoConf !== undefined && withoutTimelineSetting(autoConf) !== autoConf)
      await files.write('postgresql.auto.conf', withoutTimelineSetting(autoConf));
  } finally {
    await helper.close(opts);
  }
  opts.onProgress?.('starting the rebuilt replica');
  await replica.start(replicas, opts);
  await replica.annotate(REBUILD_ANNOTATION, null);
  return {
    ms: Date.now() - started,
    keptFiles: kept
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
  };
}
