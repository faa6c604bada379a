// Loads and validates the catalog file named by PGOPS_CONFIG. A broken catalog is reported with
// the file, the cluster, the field and what is wrong, so an operator can fix it in one go.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { catalogSchema, type Catalog, type ClusterEntry } from './schema';

export class CatalogError extends Error {
  override readonly name = 'CatalogError';
}

export function describeIssues(file: string, error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const [top, cluster, ...rest] = issue.path.map(String);
    const where =
      top === 'clusters' && cluster !== undefined
        ? `cluster "${cluster}"${rest.length ? `, field ${rest.join('.')}` : ''}`
        : issue.path.length
          ? `field ${issue.path.join('.')}`
          : 'top level';
    return `  - ${where}: ${issue.message}`;
  });
  return `catalog ${file} is not valid:\n${lines.join('\n')}`;
}

/** Parses catalog text; relative paths are taken relative to the catalog file's folder. */
export function parseCatalog(text: string, file: string): Catalog {
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    const message = err instanceof YAMLParseError ? err.message : String(err);
    throw new CatalogError(`catalog ${file} is not valid YAML: ${message}`);
  }
  const result = catalogSchema.safeParse(raw ?? {});
  if (!result.success) throw new CatalogError(describeIssues(file, result.error));
  const base = dirname(resolve(file));
  for (const entry of Object.values(result.data.clusters)) resolvePaths(entry, base);
  return result.data;
}

function resolvePaths(entry: ClusterEntry, base: string): void {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (entry.target.kind === 'local') {
    entry.target.pgdata = abs(entry.target.pgdata);
    if (entry.target.logFile) entry.target.logFile = abs(entry.target.logFile);
  } else if (entry.target.kubeconfig) {
    entry.target.kubeconfig = abs(entry.target.kubeconfig);
  }
  if (entry.storage?.kind === 'local' && entry.storage.snapshotDir)
    entry.storage.snapshotDir = abs(entry.storage.snapshotDir);
  if (entry.storage?.kind === 'rbd') {
    if (entry.storage.cephConf) entry.storage.cephConf = abs(entry.storage.cephConf);
    for (const volume of entry.storage.volumes ?? []) {
      volume.mountpoint = abs(volume.mountpoint);
      if (volume.fuseDir) volume.fuseDir = abs(volume.fuseDir);
    }
  }
  if (entry.walArchive) entry.walArchive = abs(entry.walArchive);
  if (entry.exportDir) entry.exportDir = abs(entry.exportDir);
}

/** The last catalog parsed from each file, with the text it was parsed from. */
const parsed = new Map<string, { text: string; catalog: Catalog }>();

/**
 * Reads and checks the catalog. Read on every call (an operator's fix takes effect at the next
 * step, without a restart); parsed and checked again only when the file's text has changed.
 * The result is shared between callers and must not be changed.
 */
export function loadCatalog(file: string): Catalog {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CatalogError(
      `cannot read catalog ${file}: ${(err as Error).message} (set PGOPS_CONFIG to the catalog's path)`,
    );
  }
  const cached = parsed.get(file);
  if (cached?.text === text) return cached.catalog;
  const catalog = parseCatalog(text, file);
  parsed.set(file, { text, catalog });
  return catalog;
}

export function catalogPathFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGOPS_CONFIG ?? resolve('pgops.yaml');
}
