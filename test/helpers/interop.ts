import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Command } from 'commander';
import { lastValueFrom, toArray } from 'rxjs';
import type { Prediction } from '../../src/core/window.js';
import {
  registerExportCommand,
  registerExportModelCommand,
  registerImportCommand,
} from '../../src/interop/cli.js';
import type { BackendName } from '../../src/model/step-kernel.js';
import type { Model } from '../../src/model/weights.js';
import { PredictionPipelineRunner, REPLAY_QUEUE } from '../../src/pipeline/prediction-pipeline.js';
import { replayRecording } from '../../src/record/replay.js';
import { registerEvalCommand } from '../../src/train/cli.js';
import { S } from './labelled-session.js';
import type { NpyRead } from './npy-reader.js';

/** Runs `braid <args>` in-process (export, import, export-model, eval), its output captured. */
export async function braid(...args: string[]): Promise<string> {
  const program = new Command('braid').exitOverride();
  registerExportCommand(program);
  registerImportCommand(program);
  registerExportModelCommand(program);
  registerEvalCommand(program);
  let out = '';
  const write = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string) => {
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'braid', ...args]);
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
  return out;
}

/**
 * braid's replay predictions of recordings through the live pipeline, by `<file>\0<streamId>`. The idle timeout is
 * long so the windows depend on timestamps only, not on how busy the test machine is.
 */
export async function replayPredictions(
  model: Model,
  files: readonly string[],
  backend: BackendName = 'cpu-fused',
): Promise<Map<string, Prediction[]>> {
  const out = new Map<string, Prediction[]>();
  for (const file of files) {
    const runner = await PredictionPipelineRunner.create({
      model,
      backend,
      windowing: { idleTimeout: 600 * S },
      maxQueue: REPLAY_QUEUE,
    });
    try {
      const predictions = await lastValueFrom(
        runner.run(replayRecording(file, { speed: 'max' })).pipe(toArray()),
      );
      for (const p of predictions) {
        const key = `${file}\u0000${p.streamId}`;
        out.set(key, [...(out.get(key) ?? []), p]);
      }
    } finally {
      runner.runtime.dispose();
    }
  }
  return out;
}

/** One exported sequence with its arrays, as a reader of the .npz sees it. */
export interface ExportedSequence {
  readonly key: string;
  readonly session: string;
  readonly stream: string;
  readonly x: Float32Array;
  readonly t: BigInt64Array;
  readonly windows: number;
}

export function exportedSequences(
  arrays: Map<string, NpyRead>,
  meta: { sequences: ExportedSequence[] },
): ExportedSequence[] {
  return meta.sequences.map((s) => ({
    ...s,
    x: arrays.get(`x_${s.key}`)?.values as Float32Array,
    t: arrays.get(`t_${s.key}`)?.values as BigInt64Array,
  }));
}

/**
 * Largest |braid − reference| over every exported window: braid's replay score for the window ending at t_[i],
 * against the reference's scores row i. Throws if braid has no prediction for a window or predicted others.
 */
export function maxDifference(
  sequences: readonly ExportedSequence[],
  braidPredictions: Map<string, Prediction[]>,
  labels: readonly string[],
  reference: (s: ExportedSequence) => Float32Array | Float64Array,
): number {
  let worst = 0;
  const used = new Map<string, number>();
  for (const s of sequences) {
    const key = `${s.session}\u0000${s.stream}`;
    const byEnd = new Map((braidPredictions.get(key) ?? []).map((p) => [p.windowEnd, p]));
    const ref = reference(s);
    for (let i = 0; i < s.windows; i++) {
      const p = byEnd.get(Number(s.t[i]));
      if (p === undefined) throw new Error(`braid predicted no window ending at ${s.t[i]} for ${s.key}`);
      labels.forEach((label, j) => {
        worst = Math.max(
          worst,
          Math.abs((p.scores[label] as number) - (ref[i * labels.length + j] as number)),
        );
      });
    }
    used.set(key, (used.get(key) ?? 0) + s.windows);
  }
  for (const [key, list] of braidPredictions)
    if (list.length !== used.get(key))
      throw new Error(`braid predicted ${list.length} windows for ${key}, the export has ${used.get(key)}`);
  return worst;
}

/** Saves a tfjs-layers model as tf.LayersModel.save's file handlers do: model.json and one weight shard beside it. */
export async function saveLayersModel(model: tfl.LayersModel, file: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const shard = 'group1-shard1of1.bin';
      // The fields tfjs' file and HTTP save handlers write.
      const json = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [shard], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFile(
        join(dirname(file), shard),
        new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? [])),
      );
      await writeFile(file, JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

/** Stateful, window by window: the state carried from one predict call to the next, reset between sequences. */
export function statefulPredict(
  model: tfl.LayersModel,
  s: ExportedSequence,
  width: number,
  labels: number,
): Float32Array {
  model.resetStates();
  const out = new Float32Array(s.windows * labels);
  for (let i = 0; i < s.windows; i++) {
    const y = tf.tidy(() => {
      const x = tf.tensor3d(s.x.subarray(i * width, (i + 1) * width), [1, 1, width]);
      return (model.predict(x) as tf.Tensor).dataSync();
    });
    out.set(y, i * labels);
  }
  return out;
}
