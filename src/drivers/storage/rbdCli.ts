// The `rbd` command, with --format json parsed, behind a runner: on the worker host
// (runner: local) or, on Kubernetes, in the Rook toolbox pod. Arguments are arrays; pool, image
// and snapshot names are validated by the catalog schema and the backup id pattern first.
import type { CommandResult } from '../exec';

export type RbdRunner = (args: string[], signal?: AbortSignal) => Promise<CommandResult>;

export interface RbdSnapshot {
  name: string;
  size: number;
  timestamp?: string;
}

export interface RbdImageInfo {
  features: string[];
  /** pool/image@snap, for a clone not yet flattened. */
  parent?: string;
}

function failure(args: string[], result: CommandResult): Error {
  return new Error(`rbd ${args.join(' ')} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`);
}

function parseMetadata(out: string): Record<string, string> {
  const trimmed = out.trim();
  return trimmed ? (JSON.parse(trimmed) as Record<string, string>) : {};
}

export class RbdCli {
  constructor(private readonly run: RbdRunner) {}

  private async ok(args: string[], signal?: AbortSignal): Promise<string> {
    const result = await this.run(args, signal);
    if (result.code !== 0) throw failure(args, result);
    return result.stdout;
  }

  /** Like ok, but undefined when the image the command names does not exist. */
  private async okUnlessMissing(args: string[]): Promise<string | undefined> {
    const result = await this.run(args);
    if (result.code === 0) return result.stdout;
    if (/\(2\) No such file or directory/.test(result.stderr)) return undefined;
    throw failure(args, result);
  }

  async listSnapshots(spec: string): Promise<RbdSnapshot[]> {
    return JSON.parse(await this.ok(['snap', 'ls', spec, '--format', 'json'])) as RbdSnapshot[];
  }

  async createSnapshot(spec: string, snap: string, signal?: AbortSignal): Promise<void> {
    await this.ok(['snap', 'create', '--no-progress', `${spec}@${snap}`], signal);
  }

  /** Idempotent: a snapshot that is not there is fine. */
  async removeSnapshot(spec: string, snap: string, signal?: AbortSignal): Promise<void> {
    if (!(await this.listSnapshots(spec)).some((s) => s.name === snap)) return;
    await this.ok(['snap', 'rm', '--no-progress', `${spec}@${snap}`], signal);
  }

  async rollback(spec: string, snap: string, signal?: AbortSignal): Promise<void> {
    await this.ok(['snap', 'rollback', '--no-progress', `${spec}@${snap}`], signal);
  }

  async listMetadata(spec: string): Promise<Record<string, string>> {
    return parseMetadata(await this.ok(['image-meta', 'list', spec, '--format', 'json']));
  }

  /** The image's metadata, or undefined when no image has that name. */
  async listMetadataIfExists(spec: string): Promise<Record<string, string> | undefined> {
    const out = await this.okUnlessMissing(['image-meta', 'list', spec, '--format', 'json']);
    return out === undefined ? undefined : parseMetadata(out);
  }

  async setMetadata(spec: string, key: string, value: string): Promise<void> {
    await this.ok(['image-meta', 'set', spec, key, value]);
  }

  async removeMetadata(spec: string, key: string): Promise<void> {
    if (!(key in (await this.listMetadata(spec)))) return;
    await this.removeListedMetadata(spec, key);
  }

  /** Removes a key the caller has just listed (one call instead of two). */
  async removeListedMetadata(spec: string, key: string): Promise<void> {
    await this.ok(['image-meta', 'remove', spec, key]);
  }

  /** The images of a pool, by name. */
  async listImages(pool: string): Promise<string[]> {
    return JSON.parse((await this.ok(['ls', pool, '--format', 'json'])).trim() || '[]') as string[];
  }

  /**
   * A copy-on-write clone of spec@snap, clone format 2: the snapshot needs no protection, and a
   * snapshot deleted while it has clones moves to Ceph's trash namespace until the last one goes.
   */
  async clone(spec: string, snap: string, child: string, signal?: AbortSignal): Promise<void> {
    await this.ok(['clone', '--rbd-default-clone-format', '2', `${spec}@${snap}`, child], signal);
  }

  /** The clones of spec@snap, as pool/image. */
  async children(spec: string, snap: string): Promise<string[]> {
    const out = (await this.ok(['children', `${spec}@${snap}`, '--format', 'json'])).trim();
    return (JSON.parse(out || '[]') as Array<{ pool: string; image: string }>).map((c) => `${c.pool}/${c.image}`);
  }

  async removeImage(spec: string, signal?: AbortSignal): Promise<void> {
    await this.ok(['rm', '--no-progress', spec], signal);
  }

  /** `rbd rename`: it does not check for clients (watchers move with the image), so check first. */
  async rename(from: string, to: string, signal?: AbortSignal): Promise<void> {
    await this.ok(['rename', from, to], signal);
  }

  /** The image's features, and the snapshot it is a clone of (pool/image@snap), if it is one. */
  async info(spec: string): Promise<RbdImageInfo> {
    const info = JSON.parse(await this.ok(['info', spec, '--format', 'json'])) as {
      features?: string[];
      parent?: { pool: string; pool_namespace?: string; image: string; snapshot: string };
    };
    const parent = info.parent;
    return {
      features: info.features ?? [],
      parent: parent ? `${parent.pool}/${parent.image}@${parent.snapshot}` : undefined,
    };
  }

  /** Every snapshot, those Ceph moved to its trash namespace (kept for their clones) too. */
  async listAllSnapshots(spec: string): Promise<Array<RbdSnapshot & { namespace?: string }>> {
    const out = await this.ok(['snap', 'ls', '--all', spec, '--format', 'json']);
    return (JSON.parse(out) as Array<RbdSnapshot & { namespace?: { type?: string } | string }>).map((s) => ({
      ...s,
      namespace: typeof s.namespace === 'object' ? s.namespace?.type : s.namespace,
    }));
  }

  /** A clone of spec@snap with the given features (clone format 2: no protection needed). */
  async cloneWithFeatures(
    spec: string,
    snap: string,
    child: string,
    features: string[],
    signal?: AbortSignal,
  ): Promise<void> {
    const featureArgs = features.flatMap((f) => ['--image-feature', f]);
    await this.ok(['clone', '--rbd-default-clone-format', '2', ...featureArgs, `${spec}@${snap}`, child], signal);
  }

  /** Clients that have the image open (rbd-fuse, a kernel mapping): a rollback needs none. */
  async watchers(spec: string): Promise<number> {
    const out = await this.okUnlessMissing(['status', spec, '--format', 'json']);
    // An image that is not there (renamed aside by a clone-swap that a crash interrupted) has no client.
    if (out === undefined) return 0;
    const status = JSON.parse(out) as { watchers?: unknown[] };
    return status.watchers?.length ?? 0;
  }
}
