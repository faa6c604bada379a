// A restore drill's checks on its scratch instance (pg_amcheck while it runs, the archive's coverage,
// pg_checksums on the stopped copy) and its verdict, kept in the backup's record and in a gauge.
import type { ClusterRegistry } from './clusterRegistry';
import { asStep } from './failures';
import { setLastVerified } from './drillGauge';
import { withHeartbeats } from './heartbeat';
import { scratchRecord, type ScratchRef } from './scratchSteps';
import { archiveCoverage } from '../drivers/postgres/archive/archiveCoverage';
import { checksumsEnabled, checksumVerdict, runAmcheck } from '../drivers/postgres/scratch/drillChecks';
import type { BackupRecord } from '../contract/backups';
import type { BackupVerification, DrillChecks } from '../contract/scratch';

export function createScratchDrillSteps(registry: ClusterRegistry) {
  return {
    /** The drill's checks: pg_amcheck while it runs, the archive's coverage, then pg_checksums on the stopped copy. */
    async checkScratch(
      input: ScratchRef & { backup: string; amcheck: boolean; checksums: boolean; archive: boolean },
    ): Promise<DrillChecks> {
      const { cluster, scratchId } = input;
      return asStep(cluster, 'drill-checks', () =>
        withHeartbeats(async (progress) => {
          const services = registry.services(cluster);
          const space = services.scratch();
          const record = await scratchRecord(services, scratchId, 'drill-checks');
          const binDir = services.archive.pgBinDir;
          const checks: DrillChecks = {};
          if (input.amcheck && (await space.running(record))) {
            progress.report('pg_amcheck: every database, heap and B-tree indexes');
            checks.amcheck = await runAmcheck(
              await space.endpoint(record, await services.endpoint()),
              binDir,
              progress.signal,
            );
          }
          const archive = services.archive.walArchive;
          const backup =
            input.archive && archive
              ? (await services.storage().listRecords()).find((r) => r.id === input.backup)
              : undefined;
          if (archive && backup) {
            progress.report(`the WAL archive's coverage from backup ${backup.id} on`);
            // Read where the scratch server reads it: the worker's directory, or the scratch pod's archive volume.
            const files = await space.archiveFiles(record, archive, { signal: progress.signal });
            if (typeof files === 'string') {
              checks.archive = {
                ok: false,
                checked: false,
                note: `not checked: ${files} (checks.archive false drills without it)`,
              };
            } else {
              const [coverage] = archiveCoverage(files, [backup]);
              checks.archive = {
                ok: coverage!.wal === 'complete',
                missingSegment: coverage!.missingSegment,
                note: coverage!.note,
              };
            }
          }
          if (input.checksums) {
            progress.report('stopping the scratch server for pg_checksums');
            await space.stop(record, { onProgress: (d) => progress.report(d), signal: progress.signal });
            const control = await space.runProgram(record, 'pg_controldata', []);
            // A pg_controldata that failed says nothing of checksums: never taken for "off".
            if (control.code !== 0)
              throw new Error(
                `pg_controldata on the scratch copy failed: ${(control.stderr || control.stdout).trim()}`,
              );
            if (!checksumsEnabled(control.stdout)) {
              checks.checksums = { ok: true, enabled: false, badBlocks: 0, problems: [] };
            } else {
              progress.report('pg_checksums --check on the stopped copy');
              const result = await space.runProgram(record, 'pg_checksums', ['--check'], { signal: progress.signal });
              checks.checksums = checksumVerdict(result.code, `${result.stdout}\n${result.stderr}`);
            }
          }
          return checks;
        }),
      );
    },

    /** Keeps the drill's verdict in the backup's record; a backup deleted meanwhile keeps nothing. */
    async recordVerification(input: {
      cluster: string;
      backup: string;
      verification: BackupVerification;
    }): Promise<{ saved: boolean }> {
      const { cluster } = input;
      return asStep(cluster, 'record-verification', async () => {
        const storage = registry.services(cluster).storage();
        const record: BackupRecord | undefined = (await storage.listRecords()).find((r) => r.id === input.backup);
        if (record) await storage.saveRecord({ ...record, verification: input.verification });
        if (input.verification.ok) setLastVerified(cluster, input.verification.at);
        return { saved: record !== undefined };
      });
    },
  };
}
