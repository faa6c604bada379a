// After an in-place restore of a primary (README "History"): each catalog replica of it
// (replicaOf) is either still on the new history (it has not replayed past the fork: it is told
// to follow the new timeline by number, since its own timeline's old WAL goes on in the archive
// and would take it past the fork) or has diverged (it replayed the rolled-back history past the
// fork: only a rebuild from the restored primary brings it back). Nothing says so otherwise: a
// diverged replica logs "forked off ... before current recovery point" for ever.
import { Context, log } from '@temporalio/activity';
import type { ClusterRegistry } from './clusterRegistry';
import { asStep } from './failures';
import { withHeartbeats } from './heartbeat';
import { withSession } from '../drivers/postgres/session';
import { archiveSegmentSize, readTimelines, segmentFileName } from '../drivers/postgres/archive/timelines';
import { currentWalTimeline, switchWal } from '../drivers/postgres/archive/archiving';
import { onPrimaryHistory, serverPosition } from '../drivers/postgres/replica/replicaHistory';
import { listArchivedSegments } from '../drivers/postgres/archive/walInspect';
import { parseLsn } from '../common/lsn';
import { followTimeline, recoveryTargetTimeline } from '../drivers/postgres/replica/replicaTimeline';
import { replicaRebuilder } from './replicaRebuild';
import { lockStateQuery, lockWorkflowId } from '../contract/definitions';
import { pollUntil } from '../drivers/waiting';
import type { LockedStepInput } from './lockGuard';
import type { ReplicaOutcome, ReplicasReconciled } from '../contract/operations/restoreSteps';

export type ReplicaMode = 'auto' | 'rebuild' | 'follow' | 'leave';

export function createReplicaSteps(registry: ClusterRegistry) {
  return {
    async reconcileReplicas(input: LockedStepInput & { mode: ReplicaMode }): Promise<ReplicasReconciled> {
      const { cluster, mode } = input;
      return asStep(cluster, 'replicas', () =>
        withHeartbeats(async (progress) => {
          const catalog = registry.catalogNow();
          const replicas = Object.entries(catalog.clusters)
            .filter(([, e]) => e.replicaOf === cluster)
            .map(([name]) => name);
          const services = registry.services(cluster);
          const timeline = await withSession(await services.endpoint(), currentWalTimeline);
          if (replicas.length === 0) return { timeline, replicas: [] };
          const archive = services.archive.walArchive;
          if (!archive)
            throw new Error('the catalog names no walArchive for the primary: its timelines cannot be read');
          // The new timeline's history file is archived right after the promotion: wait for it.
          const timelines = await pollUntil<ReturnType<typeof readTimelines>>(
            async () => {
              const t = readTimelines(archive);
              return t.get(timeline)?.history.length || timeline === 1
                ? { done: t }
                : { waiting: `${timeline.toString(16).padStart(8, '0').toUpperCase()}.history not archived yet` };
            },
            { intervalMs: 250, timeoutMs: 60_000, what: `the history file of timeline ${timeline} in ${archive}` },
          );
          const parent = timelines.get(timeline)?.history.at(-1);
          const outcomes: ReplicaOutcome[] = [];
          for (const replica of replicas) {
            progress.report(`checking replica "${replica}" against timeline ${timeline}`);
            outcomes.push(await reconcileOne(registry, replica, timeline, timelines, mode, progress));
          }
          return { timeline, forkedFrom: parent?.timeline, forkLsn: parent?.switchpoint, replicas: outcomes };
        }),
      );
    },
  };
}

async function reconcileOne(
  registry: ClusterRegistry,
  replica: string,
  timeline: number,
  timelines: ReturnType<typeof readTimelines>,
  mode: ReplicaMode,
  progress: { report(detail: string): void; signal: AbortSignal },
): Promise<ReplicaOutcome> {
  const busy = await lockHolder(replica);
  if (busy)
    return {
      replica,
      position: 'unknown',
      action: 'skipped',
      note: `workflow ${busy} holds replica "${replica}": it was not checked. Check it once that ends (a PITR on it would act on the old history)`,
    };
  const services = registry.services(replica);
  const entry = services.entry;
  const rebuilder = replicaRebuilder(registry, services);
  const rebuildOptions = {
    onProgress: (d: string) => progress.report(`replica "${replica}": ${d}`),
    signal: progress.signal,
  };
  if (mode !== 'leave' && (await rebuilder.inProgress())) {
    // Stopped half way by a crash: its position cannot be read, and it was past the fork.
    const rebuilt = await rebuilder.rebuild(rebuildOptions);
    return {
      replica,
      position: 'past-fork',
      action: 'rebuilt',
      note: `a rebuild interrupted by a crash was finished: rebuilt from the primary in ${rebuilt.ms} ms, its own configuration kept (${rebuilt.keptFiles.join(', ')})`,
    };
  }
  const position = await serverPosition(await services.endpoint()).then(
    (p) => (p.inRecovery ? { timeline: p.timeline, replayLsn: p.lsn } : undefined),
    (err: unknown) => {
      log.warn('replica not readable', { replica, error: String(err) });
      return undefined;
    },
  );
  if (!position)
    return {
      replica,
      position: 'unknown',
      action: 'skipped',
      note: `replica "${replica}" did not answer: start it, then check it follows timeline ${timeline} (its log must not say "forked off ... before current recovery point"); rebuild it from the primary otherwise`,
    };
  const history = timelines.get(timeline)?.history ?? [];
  const onPath = onPrimaryHistory(
    { timeline, history },
    { timeline: position.timeline, lsn: position.replayLsn },
  ).onHistory;
  const forkLsn = history.find((e) => e.timeline === position.timeline)?.switchpoint;
  const base = {
    replica,
    position: onPath ? ('before-fork' as const) : ('past-fork' as const),
    replayLsn: position.replayLsn,
    replicaTimeline: position.timeline,
  };
  const where = `it replayed timeline ${position.timeline} to ${position.replayLsn}${forkLsn ? `, the new timeline ${timeline} forked at ${forkLsn}` : ''}`;
  if (mode === 'leave')
    return {
      ...base,
      action: 'left',
      note: `WARNING: left as it is ("replicas": "leave"): ${where}. ${onPath ? `It follows timeline ${timeline} only if it is restarted with recovery_target_timeline = ${timeline}` : 'It has diverged from the primary for good and receives nothing new: rebuild it from the primary'}`,
    };
  if (onPath && mode !== 'rebuild') {
    await archiveForkSegment(registry, entry.replicaOf!, timeline, timelines, progress);
    progress.report(`replica "${replica}" is before the fork: restarting it to follow timeline ${timeline}`);
    await withSession(await services.endpoint(), (c) => followTimeline(c, timeline));
    await services.target().restartServer({ onProgress: (d) => progress.report(d) });
    const inForce = await recoveryTargetTimeline(await services.endpoint());
    if (inForce !== String(timeline))
      throw new Error(
        `replica "${replica}" restarted with recovery_target_timeline = ${inForce}, not ${timeline}: a setting in its configuration overrides postgresql.auto.conf`,
      );
    return { ...base, action: 'followed', note: `${where}: restarted with recovery_target_timeline = ${timeline}` };
  }
  if (!onPath && mode === 'follow')
    return {
      ...base,
      action: 'skipped',
      note: `WARNING: cannot follow ("replicas": "follow"): ${where}, past the fork. It has diverged and receives nothing new: rebuild it from the primary`,
    };
  progress.report(`replica "${replica}" is past the fork: rebuilding it from the primary`);
  const rebuilt = await rebuilder.rebuild(rebuildOptions);
  return {
    ...base,
    action: 'rebuilt',
    note: `${where}: rebuilt from the primary with pg_basebackup in ${rebuilt.ms} ms, its own configuration kept (${rebuilt.keptFiles.join(', ')})`,
  };
}

/**
 * PostgreSQL 15 reads a segment from the newest timeline that has it in the archive, else from an
 * older one: a replica told to follow the new timeline before its first segment (the one holding
 * the fork) is archived reads the old timeline's copy, which goes on past the fork with the
 * rolled-back history. So that segment is switched out and archived first.
 */
async function archiveForkSegment(
  registry: ClusterRegistry,
  primary: string,
  timeline: number,
  timelines: ReturnType<typeof readTimelines>,
  progress: { report(detail: string): void },
): Promise<void> {
  const services = registry.services(primary);
  const archive = services.archive.walArchive!;
  const fork = timelines.get(timeline)?.history.at(-1)?.switchpoint;
  const size = archiveSegmentSize(timelines);
  if (!fork || !size) return;
  const name = segmentFileName(timeline, parseLsn(fork) / size, size);
  const archived = () => listArchivedSegments(archive).some((s) => s.fileName === name);
  if (archived()) return;
  progress.report(`switching the primary's WAL so that ${name}, where timeline ${timeline} begins, is archived`);
  await withSession(await services.endpoint(), switchWal);
  await pollUntil(async () => (archived() ? { done: undefined } : { waiting: `${name} not archived yet` }), {
    intervalMs: 200,
    timeoutMs: 120_000,
    what: `${name} in the WAL archive ${archive}`,
  });
}

/** The workflow holding this cluster's lock (on this task queue), if any. */
async function lockHolder(cluster: string): Promise<string | undefined> {
  const ctx = Context.current();
  try {
    const state = await ctx.client.workflow
      .getHandle(lockWorkflowId(cluster, ctx.info.taskQueue))
      .query(lockStateQuery);
    return state.holder?.workflowId;
  } catch {
    return undefined; // no lock workflow: nobody holds it
  }
}
