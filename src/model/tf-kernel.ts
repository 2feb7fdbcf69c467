import { BraidError } from '../core/errors.js';
import { deviceOf } from './backend-device.js';
import { type ModelConfig, type ModelDims, modelDims } from './config.js';
import { type BackendName, batchBucket, checkStepArgs, type StepKernel } from './step-kernel.js';
import { createModelParams, disposeParams, type ModelParams, modelStep } from './tf-model.js';
import { tf } from './tfjs.js';
import type { Model } from './weights.js';

/**
 * A step kernel running the tfjs-ops model ({@link modelStep}) on a tfjs backend (cpu, wasm, webgpu, tensorflow).
 * Batches are padded to power-of-two buckets so backends that compile per shape (webgpu, wasm) compile a handful
 * of programs, not one per batch size. tfjs has one global active backend: the kernel's weights live on the backend
 * that was active when it was created (see backends.ts), and a step refuses to run if something switched it since.
 */
export class TfStepKernel implements StepKernel {
  readonly device: 'cpu' | 'gpu';
  readonly dims: ModelDims;
  private readonly config: ModelConfig;
  private readonly params: ModelParams;
  private readonly xPad: Float32Array;
  private readonly statePad: Float32Array;
  private disposed = false;

  constructor(
    model: Model,
    readonly backend: BackendName,
    readonly maxBatch: number,
  ) {
    this.assertActive();
    this.config = model.config;
    this.dims = modelDims(model.config);
    this.device = deviceOf(backend);
    this.params = createModelParams(model);
    this.xPad = new Float32Array(maxBatch * this.dims.input);
    this.statePad = new Float32Array(maxBatch * this.dims.state);
  }

  step(
    n: number,
    x: Float32Array,
    state: Float32Array,
    y: Float32Array,
    nextState: Float32Array,
  ): void | Promise<void> {
    checkStepArgs(this, n, x, state, y, nextState);
    this.assertActive();
    const { input: F, state: S, labels: L } = this.dims;
    const bucket = batchBucket(n, this.maxBatch);
    // Padding rows keep whatever an earlier step left there: rows are independent, their results are dropped.
    this.xPad.set(x.subarray(0, n * F));
    this.statePad.set(state.subarray(0, n * S));
    const out = tf.tidy(() => {
      const r = modelStep(
        this.params,
        this.config,
        tf.tensor2d(this.xPad.subarray(0, bucket * F), [bucket, F]),
        tf.tensor2d(this.statePad.subarray(0, bucket * S), [bucket, S]),
      );
      // One read-back instead of two: on a GPU each read is a round trip.
      return tf.concat([r.y, r.state], 1);
    });
    const scatter = (values: Float32Array): void => {
      const W = L + S;
      for (let r = 0; r < n; r++) {
        y.set(values.subarray(r * W, r * W + L), r * L);
        nextState.set(values.subarray(r * W + L, (r + 1) * W), r * S);
      }
    };
    // `out` is freed however the read ends: a failed read-back must not leak a tensor per step.
    if (this.device === 'cpu')
      try {
        return scatter(out.dataSync() as Float32Array);
      } finally {
        out.dispose();
      }
    return out
      .data()
      .then((values) => scatter(values as Float32Array))
      .finally(() => out.dispose());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeParams(this.params);
  }

  private assertActive(): void {
    const active = tf.getBackend();
    if (active !== this.backend)
      throw new BraidError(
        'BRAID_ERR_MODEL',
        `the ${this.backend} kernel needs tfjs backend "${this.backend}" active, but "${active}" is (another part of the program called tf.setBackend)`,
      );
  }
}
