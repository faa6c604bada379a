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
  /** pool/image holding the snapshot as found before the swap: the image itself, or one set aside earlier. */
  holder: string;
  restoreId: string;
  backup: string;
  /** The image's features, when the caller has read them (saves a call). */
  features?: string[];
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
 * image metadata the image had (`rbd clone` copies its parent's, which is an older image when the
 * snapshot is on one). Idempotent: a retry finds the renamed image by its name and finishes what is
 * missing; after the rename, `holder` is found again by the caller (the name is the image set aside).
 */
export async function swapImage(
  rbd: RbdCli,
  step: SwapStep,
  opts: WaitOptions & { clientWaitMs?: number } = {},
): Promise<Swapped> {
  const { spec, snap, restoreId } = step;
  const pool = spec.slice(0, spec.indexOf('/'));
  const image = spec.slice(spec.indexOf('/') + 1);
  const setAside = `${pool}/${setAsideName(image, restoreId)}`;
  const names = await rbd.listImages(pool);
  const imageThere = names.includes(image);
  const setAsideThere = names.includes(setAsideName(image, restoreId));
  let features = step.features;
  if (!setAsideThere) {
    if (!imageThere) throw new PermanentDriverError(`RBD image ${spec} does not exist`);
    features ??= (await rbd.info(spec)).features;
    if (!features.includes('layering'))
      throw new PermanentDriverError(
        `${spec} has no layering feature: it cannot be cloned; use restoreMethod rollback`,
      );
    await waitForNoClients(rbd, spec, { ...opts, timeoutMs: opts.clientWaitMs });
    opts.onProgress?.(`rbd rename ${spec} ${setAside}`);
    await rbd.rename(spec, setAside, opts.signal);
  }
  // A crash test kills the worker here: the image renamed aside, its name free.
  await pauseForTests('swap-renamed', opts.signal);
  // Before the rename the snapshot was on the image itself: now it is on the image set aside.
  const holder = step.holder === spec ? setAside : step.holder;
  const clonedFrom = `${holder}@${snap}`;
  if (setAsideThere && imageThere) {
    const { parent } = await rbd.info(spec);
    if (parent !== clonedFrom)
      throw new PermanentDriverError(
        `${spec} exists beside ${setAside} but is not the clone of ${clonedFrom}${parent ? ` (it is a clone of ${parent})` : ''}: something else made it; look at both images before restoring`,
      );
  } else {
    const cloneFeatures = (features ?? (await rbd.info(setAside)).features).filter((f) => CLONE_FEATURES.has(f));
    opts.onProgress?.(`rbd clone ${clonedFrom} → ${spec} (format 2, ${cloneFeatures.join(',')})`);
    await rbd.cloneWithFeatures(holder, snap, spec, cloneFeatures, opts.signal);
  }
  // The clone copied its parent's image metadata. A clone of the image set aside has that image's own
  // (the backup records among it); a clone of an older image has that one's: the image's go with the name.
  if (holder !== setAside) {
    const { [SET_ASIDE_MARK]: _mark, ...source } = await rbd.listMetadata(setAside);
    const cloneMeta = await rbd.listMetadata(spec);
    for (const [key, value] of Object.entries(source))
      if (cloneMeta[key] !== value) await rbd.setMetadata(spec, key, value);
    for (const key of Object.keys(cloneMeta)) if (!(key in source)) await rbd.removeListedMetadata(spec, key);
  }
  const mark: SetAsideMark = { restoreId, image: spec, backup: step.backup, clonedFrom, at: new Date().toISOString() };
  await rbd.setMetadata(setAside, SET_ASIDE_MARK, JSON.stringify(mark));
  // A crash test kills the worker here: the clone made, not yet attached.
  await pauseForTests('swap-cloned', opts.signal);
  return { spec, setAside, clonedFrom };
}

/**
 * After the restore succeeded: the image set aside by `restoreId` keeps no copy of the backup records
 * (they are the volume's image's, which has them), so a listing never finds two. Idempotent. Returns
 * how many were dropped, or undefined when the image was not set aside by that restore.
 */
export async function dropCopiedRecords(
  rbd: RbdCli,
  setAside: string,
  restoreId: string,
  prefixes: string[],
): Promise<number | undefined> {
  const meta = await rbd.listMetadata(setAside);
  const mark = meta[SET_ASIDE_MARK];
  if (!mark || (JSON.parse(mark) as SetAsideMark).restoreId !== restoreId) return undefined;
  const copies = Object.keys(meta).filter((key) => prefixes.some((p) => key.startsWith(p)));
  await Promise.all(copies.map((key) => rbd.removeListedMetadata(setAside, key)));
  return copies.length;
}
