// A scratch id (pgops-scratch-<8 hex>) names pods, ConfigMaps, claims and RBD images and goes into
// label selectors: it is checked before it reaches any of them.
import { isKubernetesLabel } from '../../common/names';
import { PermanentDriverError } from '../cluster/types';

/** Leaves room for a claim name in front of it (`<claim>-<id>`, 63 characters at most). */
const MAX_SCRATCH_ID = 40;

export function checkScratchId(id: string): void {
  if (!isKubernetesLabel(id) || id.length > MAX_SCRATCH_ID)
    throw new PermanentDriverError(
      `scratch id ${JSON.stringify(id)} is not a DNS label of at most ${MAX_SCRATCH_ID} characters`,
    );
}
