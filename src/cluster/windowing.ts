import type { WindowingConfig } from '../align/windowing.js';

/**
 * The windowing a cluster runs: the model's, with the processing-time idle timeout off. A window closed because a
 * source was silent for a second of wall time could not be closed the same way again when another worker rebuilds
 * the stream after a takeover (it reads the same input in a fraction of the time), and the output would depend on
 * which worker ran it. Windows close on the input alone — every modality past their end, or the producer's progress
 * bound (braid/client and `replay --to` send them) — so any owner makes the same windows.
 */
export const CLUSTER_WINDOWING: Partial<WindowingConfig> = { idleTimeout: Number.POSITIVE_INFINITY };
