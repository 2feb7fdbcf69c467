import type { AlignHooks } from '../align/align-windows.js';
import type { AlignerStreamState } from '../align/stream-state.js';
import type { FusedWindow } from '../model/runtime.js';
import type { ModelStreamState } from '../model/state-store.js';

/**
 * A run that carries on streams from a checkpoint another run took, and the hooks through which its caller takes
 * the next one (src/cluster/partition-session.ts). A stream carried on starts in the aligner from its saved state
 * (its open windows' events are fed again as REFILL inputs) and in the model from the state after its last
 * committed window; the windows the aligner makes again up to that one are kept from the model by `admit`.
 */
export interface RunResume {
  /** Streams opened in the aligner from a saved state when the run starts. */
  readonly aligner?: readonly AlignerStreamState[];
  /** Streams given a saved model state before the run starts. */
  readonly model?: ReadonlyMap<string, ModelStreamState>;
  /** Told around each input the aligner takes, in its order. */
  readonly align?: AlignHooks;
  /** Each window out of the aligner, in order: false keeps it from the model (it ran before the checkpoint). */
  admit?(window: FusedWindow): boolean;
}
