// Clone-swap restore of an RBD image (../shared/design/ceph-bluestore.md): instead of `rbd snap
// rollback`, which rewrites every object of the image (about 0.2 s per written GiB, minutes for a
// terabyte), the image is renamed aside and the backup's snapshot cloned under its name (clone
// format 2, the same features): about 0.12 s at any size. The image set aside is the state before
// the restore, and keeps the snapshots of every earlier backup; the clone reads from it until it is
// flattened. Each step can be interrupted and redone: the names are fixed by the restore's id.
import { createHash } from 'node:crypto';
import { PermanentDriverError } from '../cluster/types';
import { pauseForTests } from '../testPause';
import { pollUntil } from '../waiting';
import type { RbdCli } from './rbdCli';
import type { WaitOptions } from '../cluster/types';

/** Image metadata on an image set aside: which restore did it, and what took its name. */
export const SET_ASIDE_MARK = 'pgops.set-aside';

export interface SetAsideMark {
  restoreId: string;
  /** pool/image whose name it had. */
  image: string;
  /** The backup restored in its place. */
  backup: string;
  /** pool/image@snap the image that took its name is a clone of. */
  clonedFrom: string;
  at: string;
}

const SUFFIX = '.pgops-pre-';
const HASH_LENGTH = 12;

/** <image>.pgops-pre-<12 hex of the restore id>: unique per restore, the same for its retries (≤ 100 characters). */
export function setAsideName(image: string, restoreId: string): string {
  const hash = createHash('sha256').update(restoreId).digest('hex').slice(0, HASH_LENGTH);
  return `${image.slice(0, 100 - SUFFIX.length - HASH_LENGTH)}${SUFFIX}${hash}`;
}

/** Whether `name` is an image a clone-swap set aside from `image`. */
export function isSetAsideOf(image: string, name: string): boolean {
  const prefix = `${image.slice(0, 100 - SUFFIX.length - HASH_LENGTH)}${SUFFIX}`;
  return (
    name.startsWith(prefix) &&
    /^[0-9a-f]+$/.test(name.slice(prefix.length)) &&
    name.length === prefix.length + HASH_LENGTH
  );
}

/** Features `rbd clone --image-feature` takes; the others (operations, data-pool...) follow the pool's defaults. */
const CLONE_FEATURES = new Set(['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten', 'journaling']);

export interface SwapStep {
  /** pool/image, the volume's image: it keeps its name. */
  spec: string;
  snap: string;
  restoreId: string;
  backup: string;
}

export interface Swapped {
  spec: string;
  /** pool/image it was renamed to. */
  setAside: string;
  /** pool/image@snap the new image is a clone of. */
  clonedFrom: string;
}

/** Waits until no client has the image open: `rbd rename` would move a live client to the old image. */
export async function waitForNoClients(
  rbd: RbdCli,
  spec: string,
  opts: WaitOptions & { timeoutMs?: number } = {},
): Promise<void> {
  await pollUntil<void>(
    async () => {
      const clients = await rbd.watchers(spec);
      return clients === 0 ? { done: undefined } : { waiting: `${spec} is still open by ${clients} client(s)` };
    },
    {
      intervalMs: 200,
      timeoutMs: opts.timeoutMs ?? 60_000,
      signal: opts.signal,
      onProgress: opts.onProgress,
      what: `the last client of RBD image ${spec} to let go (a clone-swap must not move an open image aside)`,
    },
  );
}

/**
 * Renames the image aside and clones the backup's snapshot under its name, then gives the clone the
 * image metadata the image had (`rbd clone` copies its parent's, which may be an older image).
 * Idempotent: a retry finds the renamed image by its name and finishes what is missing.
 * `locate` finds the image that holds the snapshot (after the rename: the one set aside, or older).
 */
export async function swapImage(
  rbd: RbdCli,
  step: SwapStep,
  locate: (spec: string, snap: string) => Promise<string | undefined>,
  opts: WaitOptions & { clientWaitMs?: number } = {},
): Promise<Swapped> {
  const { spec, snap, restoreId } = step;
  const pool = spec.slice(0, spec.indexOf('/'));
  const image = spec.slice(spec.indexOf('/') + 1);
  const setAside = `${pool}/${setAsideName(image, restoreId)}`;
  let names = await rbd.listImages(pool);
  if (!names.includes(setAsideName(image, restoreId))) {
    if (!names.includes(image)) throw new PermanentDriverError(`RBD image ${spec} does not exist`);
    const { features } = await rbd.info(spec);
    if (!features.includes('layering'))
      throw new PermanentDriverError(
        `${spec} has no layering feature: it cannot be cloned; use restoreMethod rollback`,
      );
    await waitForNoClients(rbd, spec, { ...opts, timeoutMs: opts.clientWaitMs });
    opts.onProgress?.(`rbd rename ${spec} ${setAside}`);
    await rbd.rename(spec, setAside, opts.signal);
    names = await rbd.listImages(pool);
  }
  // A crash test kills the worker here: the image renamed aside, its name free.
  await pauseForTests('swap-renamed', opts.signal);
  const holder = await locate(spec, snap);
  if (!holder) throw new PermanentDriverError(`snapshot ${snap} of ${spec} is on no image set aside from it`);
  const clonedFrom = `${holder}@${snap}`;
  if (!names.includes(image)) {
    const features = (await rbd.info(setAside)).features.filter((f) => CLONE_FEATURES.has(f));
    opts.onProgress?.(`rbd clone ${clonedFrom} → ${spec} (format 2, ${features.join(',')})`);
    await rbd.cloneWithFeatures(holder, snap, spec, features, opts.signal);
  } else {
    const { parent } = await rbd.info(spec);
    if (parent !== clonedFrom)
      throw new PermanentDriverError(
        `${spec} exists beside ${setAside} but is not the clone of ${clonedFrom}${parent ? ` (it is a clone of ${parent})` : ''}: something else made it; look at both images before restoring`,
      );
  }
  const asideMeta = await rbd.listMetadata(setAside);
  if (!(SET_ASIDE_MARK in asideMeta)) {
    // The metadata of the image before the restore (the backup records among it) goes with the name.
    const cloneMeta = await rbd.listMetadata(spec);
    for (const [key, value] of Object.entries(asideMeta))
      if (cloneMeta[key] !== value) await rbd.setMetadata(spec, key, value);
    for (const key of Object.keys(cloneMeta)) if (!(key in asideMeta)) await rbd.removeMetadata(spec, key);
    const mark: SetAsideMark = {
      restoreId,
      image: spec,
      backup: step.backup,
      clonedFrom,
      at: new Date().toISOString(),
    };
    await rbd.setMetadata(setAside, SET_ASIDE_MARK, JSON.stringify(mark));
  }
  // A crash test kills the worker here: the clone made, not yet attached.
  await pauseForTests('swap-cloned', opts.signal);
  return { spec, setAside, clonedFrom };
}

/**
 * After the restore succeeded: the image set aside keeps no copy of the backup records (they are the
 * volume's image's, which has them), so a listing never finds two. Idempotent.
 */
export async function dropCopiedRecords(rbd: RbdCli, setAside: string, prefixes: string[]): Promise<number> {
  const meta = await rbd.listMetadata(setAside);
  let removed = 0;
  for (const key of Object.keys(meta))
    if (prefixes.some((p) => key.startsWith(p))) {
      await rbd.removeMetadata(setAside, key);
      removed++;
    }
  return removed;
}
