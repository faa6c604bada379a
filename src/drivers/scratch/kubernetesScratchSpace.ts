// Scratch instances of a Kubernetes cluster's backups: the backup's snapshots cloned into new
// claims (SnapshotDriver.cloneSnapshots), and a scratch pod (kube/scratchPod.ts) mounting them
// where the StatefulSet's pod mounts its own claims, in which pg_ctl runs a throwaway PostgreSQL.
// The record is a ConfigMap named after the scratch id, written before anything is cloned: it
// outlives the pod and a worker crash, so list() and the janitor find every instance, and remove()
// deletes the pod, then the clones (by label), then the record. The scratch server listens on
// localhost in its pod only: the worker reaches it through a port-forward (the API server's
// pods/portforward), no other pod can.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { ClusterEntry, KubernetesTarget } from '../../config/schema';
import type { ScratchRecord } from '../../contract/scratch';
import { callKube, isKubeStatus, readIfFound, type KubeCall } from '../kube/apiErrors';
import { closePortForward, localPortFor, requirePortForwardAccess } from '../kube/portForward';
import { archiveNote, labelValue, SCRATCH_LABELS, SCRATCH_LOG, SCRATCH_RUN_DIR, ScratchPod } from '../kube/scratchPod';
import { KubernetesClusterDriver } from '../cluster/kubernetes';
import { helperDataDirectory } from '../cluster/dataDirectory';
import { PermanentDriverError, type WaitOptions } from '../cluster/types';
import {
  remapTablespaceMap,
  remapToClone,
  scratchAutoConf,
  scratchServerSettings,
} from '../postgres/scratch/scratchSettings';
import {
  archiveListingCommand,
  HISTORY_FILE,
  parseArchiveListing,
  type ArchiveFiles,
} from '../postgres/archive/archiveFiles';
import type { PgEndpoint } from '../postgres/session';
import type { SnapshotDriver } from '../storage/types';
import { pollUntil } from '../waiting';
import type { ScratchCommandResult, ScratchPortForward, ScratchRequest, ScratchSpace } from './types';
import { checkScratchId } from './scratchId';

const RECORD_KEY = 'record.json';
/** Written last by create(): a retry finds the data directory prepared and never writes backup_label again. */
const PREPARED = 'pgops-scratch-prepared';
const PORT = 5432;
/** The local port of the port-forward command given to a DBA (not 5432: a PostgreSQL of their own may have it). */
const OUTSIDE_PORT = 15432;
const LOG_LINES = 400;
const START_TIMEOUT_MS = 30_000;
/**
 * In the pod's emptyDir once pg_ctl start ran in this pod. A pod deleted with its server running
 * leaves postmaster.pid on the clone; in the pod made again, the pid in it may well be a live
 * process (the PIDs of a fresh pod repeat), and pg_ctl status would say "running" and the
 * postmaster refuse to start. Without the mark, no server ever ran here: the pid file is stale.
 */
const STARTED_MARK = `${SCRATCH_RUN_DIR}/server-started`;
const FIRST_START_SCRIPT = '[ -e "$1" ] || rm -f -- "$2/postmaster.pid"; touch "$1"';
const STATUS_SCRIPT = '[ -e "$1" ] || exit 3; exec "$2" status -D "$3"';
const PROGRAM_TIMEOUT_MS = 6 * 3600_000;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class KubernetesScratchSpace implements ScratchSpace {
  readonly where: string;
  private readonly core: CoreV1Api;
  private readonly namespace: string;

  constructor(
    private readonly cluster: string,
    private readonly target: KubernetesTarget,
    private readonly entry: ClusterEntry,
    private readonly storage: SnapshotDriver,
    private readonly kubeConfig: KubeConfig,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.namespace = target.namespace;
    this.where = `${target.namespace} (scratch pods and clone claims beside StatefulSet ${target.statefulSet})`;
  }

  private call(verb: string, name?: string): KubeCall {
    return { verb, resource: 'configmaps', group: '', namespace: this.namespace, name };
  }

  private recordOf(map: V1ConfigMap): ScratchRecord | undefined {
    const labels = map.metadata?.labels ?? {};
    const text = map.data?.[RECORD_KEY];
    if (labels[SCRATCH_LABELS.cluster] !== this.cluster || !labels[SCRATCH_LABELS.scratch] || !text) return undefined;
    return JSON.parse(text) as ScratchRecord;
  }

  async list(): Promise<ScratchRecord[]> {
    const maps = await callKube(this.call('list'), () =>
      this.core.listNamespacedConfigMap({
        namespace: this.namespace,
        labelSelector: `${SCRATCH_LABELS.scratch},${SCRATCH_LABELS.cluster}=${this.cluster}`,
      }),
    );
    return maps.items
      .map((m) => this.recordOf(m))
      .filter((r): r is ScratchRecord => r !== undefined)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async find(id: string): Promise<ScratchRecord | undefined> {
    checkScratchId(id);
    const map = await readIfFound(this.call('get', id), () =>
      this.core.readNamespacedConfigMap({ name: id, namespace: this.namespace }),
    );
    return map ? this.recordOf(map) : undefined;
  }

  /** Creates the record's ConfigMap, or replaces the record in the one a retry finds. */
  private async saveRecord(record: ScratchRecord): Promise<void> {
    const labels = {
      [SCRATCH_LABELS.scratch]: record.id,
      [SCRATCH_LABELS.cluster]: record.cluster,
      [SCRATCH_LABELS.operation]: labelValue(record.owner.operation),
      'app.kubernetes.io/managed-by': 'temporal-postgres-ops',
    };
    const data = { [RECORD_KEY]: JSON.stringify(record, null, 2) };
    try {
      await callKube(this.call('create', record.id), () =>
        this.core.createNamespacedConfigMap({
          namespace: this.namespace,
          body: { metadata: { name: record.id, labels }, data },
        }),
      );
    } catch (err) {
      if (!isKubeStatus(err, 409)) throw err;
      if (!(await this.find(record.id)))
        throw new PermanentDriverError(
          `ConfigMap ${this.namespace}/${record.id} exists and is not the record of cluster ${this.cluster}'s scratch instance ${record.id}: it is left alone`,
        );
      await callKube(this.call('patch', record.id), () =>
        this.core.patchNamespacedConfigMap({ name: record.id, namespace: this.namespace, body: { data } }, mergePatch),
      );
    }
  }

  private clusterDriver(): KubernetesClusterDriver {
    return new KubernetesClusterDriver(this.target, this.kubeConfig);
  }

  private pod(record: ScratchRecord): ScratchPod {
    return new ScratchPod(this.kubeConfig, this.namespace, {
      id: record.id,
      pod: record.pod ?? record.id,
      pgdata: record.pgdata,
    });
  }

  /** Starts (or makes again) the scratch pod: the StatefulSet's layout as it is now. */
  private async openPod(record: ScratchRecord, opts: WaitOptions): Promise<ScratchPod> {
    if (Date.parse(record.expiresAt) <= Date.now())
      throw new PermanentDriverError(
        `scratch instance ${record.id} expired at ${record.expiresAt}: it is not started again; the janitor removes it`,
      );
    const pod = this.pod(record);
    await pod.open(
      async () => ({
        layout: await this.clusterDriver().layout(),
        record,
        image: this.entry.scratch?.image,
        walArchive: this.entry.walArchive,
      }),
      opts,
    );
    return pod;
  }

  async create(request: ScratchRequest, opts: WaitOptions = {}): Promise<ScratchRecord> {
    checkScratchId(request.id);
    const layout = await this.clusterDriver().layout();
    const existing = await this.find(request.id);
    if (existing && existing.backup !== request.backup.id)
      throw new PermanentDriverError(
        `scratch instance ${request.id} already exists as a clone of backup ${existing.backup}, not ${request.backup.id}: remove it first`,
      );
    let record: ScratchRecord = {
      id: request.id,
      cluster: this.cluster,
      backup: request.backup.id,
      storage: request.backup.storage,
      owner: request.owner,
      createdAt: existing?.createdAt ?? new Date().toISOString(),
      expiresAt: request.expiresAt,
      volumes: existing?.volumes ?? [],
      pgdata: layout.pgdata,
      port: PORT,
      pod: request.id,
      methods: existing?.methods ?? [],
    };
    await this.saveRecord(record);
    const cloned = await this.storage.cloneSnapshots(request.backup, { id: request.id, dir: '' }, opts);
    if (!remapToClone(layout.pgdata, cloned.volumes))
      throw new PermanentDriverError(
        `PGDATA ${layout.pgdata} is on none of the claims cloned from backup ${request.backup.id}: the scratch pod would have no data directory`,
      );
    record = {
      ...record,
      volumes: cloned.volumes,
      methods: [...cloned.methods, archiveNote(layout, this.entry.walArchive)],
    };
    await this.saveRecord(record);
    const pod = await this.openPod(record, opts);
    const dir = helperDataDirectory(pod, opts.signal);
    if ((await dir.files.read(PREPARED)) === undefined) {
      opts.onProgress?.(`preparing ${record.pgdata} in scratch pod ${pod.name}`);
      await this.prepare(record, request, dir.files);
    }
    return record;
  }

  /** As a restore prepares a data directory, with the scratch settings last (scratchSettings.ts). */
  private async prepare(
    record: ScratchRecord,
    request: ScratchRequest,
    files: ReturnType<typeof helperDataDirectory>['files'],
  ): Promise<void> {
    const { recovery } = request;
    for (const name of new Set(['postmaster.pid', 'standby.signal', ...recovery.remove])) await files.remove(name);
    for (const [name, content] of Object.entries(recovery.write))
      await files.write(name, name === 'tablespace_map' ? remapTablespaceMap(content, record.volumes) : content);
    const settings = scratchServerSettings({
      port: PORT,
      // The worker comes through a port-forward, which reaches the pod's loopback: no other pod gets in.
      listenAddresses: 'localhost',
      socketDirectory: SCRATCH_RUN_DIR,
      sharedBuffers: this.entry.scratch?.sharedBuffers ?? '128MB',
      name: record.id,
      readOnly: recovery.settings.recovery_target_action !== 'promote',
    });
    const autoConf = (await files.read('postgresql.auto.conf')) ?? '';
    await files.write('postgresql.auto.conf', scratchAutoConf(autoConf, recovery.settings, settings));
    await files.write(PREPARED, `${record.id}\n`);
  }

  async start(record: ScratchRecord, opts: WaitOptions = {}): Promise<void> {
    const pod = await this.openPod(record, opts);
    if (await this.serverRuns(pod, opts.signal)) return;
    const pgCtl = await pod.program('pg_ctl', opts.signal);
    await pod.run(['sh', '-c', FIRST_START_SCRIPT, 'pgops-first-start', STARTED_MARK, record.pgdata], {
      signal: opts.signal,
    });
    opts.onProgress?.(`pg_ctl start in scratch pod ${pod.name}`);
    // -W: recovery may take long; running() and the caller's own wait follow it.
    await pod.run([pgCtl, 'start', '-W', '-D', record.pgdata, '-l', SCRATCH_LOG], { signal: opts.signal });
    await pollUntil<void>(
      async () =>
        (await this.serverRuns(pod, opts.signal))
          ? { done: undefined }
          : { waiting: 'the postmaster has not written its pid file yet' },
      {
        intervalMs: 250,
        timeoutMs: START_TIMEOUT_MS,
        what: `PostgreSQL in scratch pod ${this.namespace}/${pod.name} to start`,
        onProgress: opts.onProgress,
        signal: opts.signal,
      },
    ).catch(async (err: unknown) => {
      const log = (await this.serverLog(record)).slice(-5).join(' | ');
      throw new Error(`${err instanceof Error ? err.message : String(err)}; the end of its log: ${log}`);
    });
  }

  /** pg_ctl status, once a server was started in this pod (before, a pid file can only be stale). */
  private async serverRuns(pod: ScratchPod, signal?: AbortSignal): Promise<boolean> {
    const pgCtl = await pod.program('pg_ctl', signal);
    const status = await pod.exec(
      ['sh', '-c', STATUS_SCRIPT, 'pgops-status', STARTED_MARK, pgCtl, pod.scratch.pgdata],
      {
        signal,
      },
    );
    return status.code === 0;
  }

  async running(record: ScratchRecord): Promise<boolean> {
    const pod = this.pod(record);
    return (await pod.isRunning()) && this.serverRuns(pod);
  }

  async stop(record: ScratchRecord, opts: WaitOptions = {}): Promise<void> {
    const pod = this.pod(record);
    if (!(await pod.isRunning()) || !(await this.serverRuns(pod, opts.signal))) return;
    const pgCtl = await pod.program('pg_ctl', opts.signal);
    opts.onProgress?.(`pg_ctl stop -m fast in scratch pod ${pod.name}`);
    const fast = await pod.exec([pgCtl, 'stop', '-D', record.pgdata, '-m', 'fast', '-w', '-t', '60'], {
      signal: opts.signal,
    });
    if (fast.code === 0 || !(await this.serverRuns(pod, opts.signal))) return;
    opts.onProgress?.(`pg_ctl stop -m fast failed (${fast.stderr.trim()}): -m immediate`);
    await pod.run([pgCtl, 'stop', '-D', record.pgdata, '-m', 'immediate', '-w', '-t', '60'], { signal: opts.signal });
  }

  /** A loopback port of this worker forwarded to the pod's PostgreSQL, kept for the life of the worker (or remove()). */
  async endpoint(record: ScratchRecord, base: PgEndpoint): Promise<PgEndpoint> {
    const pod = record.pod ?? record.id;
    await requirePortForwardAccess(this.kubeConfig, this.namespace, pod);
    const port = await localPortFor(this.kubeConfig, this.namespace, pod, record.port);
    return { ...base, host: '127.0.0.1', port };
  }

  async runProgram(
    record: ScratchRecord,
    program: string,
    args: string[],
    opts: WaitOptions = {},
  ): Promise<ScratchCommandResult> {
    const pod = await this.openPod(record, opts);
    const path = await pod.program(program, opts.signal);
    // PGHOST/PGPORT: the programs that connect (pg_amcheck) reach the scratch server by its socket.
    // -D: the copy's data directory, as the local scratch space gives it (the image's PGDATA may differ or be unset).
    return pod.exec(['env', `PGHOST=${SCRATCH_RUN_DIR}`, `PGPORT=${record.port}`, path, '-D', record.pgdata, ...args], {
      signal: opts.signal,
      timeoutMs: PROGRAM_TIMEOUT_MS,
    });
  }

  /** Read in the scratch pod, where the archive volume is mounted read-only as the StatefulSet's pod mounts it. */
  async archiveFiles(
    record: ScratchRecord,
    walArchive: string,
    opts: WaitOptions = {},
  ): Promise<ArchiveFiles | string> {
    const pod = await this.openPod(record, opts);
    const listing = await pod.exec(archiveListingCommand(walArchive), { signal: opts.signal });
    if (listing.code !== 0)
      return `the WAL archive ${walArchive} cannot be listed in scratch pod ${this.namespace}/${pod.name}: ${(listing.stderr || listing.stdout).trim()}`;
    const files = parseArchiveListing(listing.stdout);
    const histories = new Map<string, string>();
    for (const { name } of files.filter((f) => HISTORY_FILE.test(f.name)))
      histories.set(name, await pod.run(['cat', '--', `${walArchive}/${name}`], { signal: opts.signal }));
    return { dir: walArchive, files, histories };
  }

  /** A kubectl port-forward to the scratch pod: the server listens on localhost in the pod, which a port-forward reaches. */
  portForward(record: ScratchRecord): ScratchPortForward {
    const pod = record.pod ?? record.id;
    const localPort = OUTSIDE_PORT;
    return {
      namespace: this.namespace,
      pod,
      localPort,
      command: `kubectl -n ${this.namespace} port-forward pod/${pod} ${localPort}:${record.port}`,
    };
  }

  async serverLog(record: ScratchRecord): Promise<string[]> {
    const pod = this.pod(record);
    if (!(await pod.isRunning().catch(() => false))) return [];
    const result = await pod.exec(['tail', '-n', String(LOG_LINES), SCRATCH_LOG]).catch(() => undefined);
    return result?.code === 0 ? result.stdout.trimEnd().split('\n') : [];
  }

  async remove(id: string, opts: WaitOptions = {}): Promise<void> {
    checkScratchId(id);
    const record = await this.find(id);
    const podName = record?.pod ?? id;
    // PGDATA is not needed to delete the pod: a record lost to a crash still lets the pod go.
    const pod = new ScratchPod(this.kubeConfig, this.namespace, { id, pod: podName, pgdata: record?.pgdata ?? '/' });
    opts.onProgress?.(`deleting scratch pod ${podName}`);
    await pod.delete(opts);
    await closePortForward(this.kubeConfig, this.namespace, podName, record?.port ?? PORT);
    await this.storage.removeClone({ id, dir: '' }, opts);
    // Last: until the pod and the clones are gone, the record lets list() and the janitor find them.
    if (record)
      await callKube(this.call('delete', id), () =>
        this.core.deleteNamespacedConfigMap({ name: id, namespace: this.namespace }),
      ).catch((err: unknown) => {
        if (!isKubeStatus(err, 404)) throw err;
      });
  }
}
