// The body of one shard thread: the whole per-stream path (decode, align, features, model step) of the streams the
// main thread routes to it, as PredictionPipelineRunner runs it in a single process, so its predictions are the same.
import { parentPort, workerData } from 'node:worker_threads';
import { Subject } from 'rxjs';
import type { StreamInput } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import { parseBackendName } from '../model/backends.js';
import { loadModel, modelId } from '../model/model-io.js';
import { PredictionPipelineRunner } from '../pipeline/prediction-pipeline.js';
import { decodeInputs } from './input-batch.js';
import type { FromShard, ShardOutput, ShardSetup, ToShard } from './shard-messages.js';

const port = parentPort!;
const setup = workerData as ShardSetup;
const post = (message: FromShard): void => port.postMessage(message);

// Warnings and errors (a failover, a bad window) reach the main thread's log; the rest it already says once itself.
const log: Logger = {
  error: (fields, message) =>
    post({ type: 'log', level: 'error', fields: { shard: setup.shard, ...fields }, message }),
  warn: (fields, message) =>
    post({ type: 'log', level: 'warn', fields: { shard: setup.shard, ...fields }, message }),
  info: () => {},
  debug: () => {},
};

const input$ = new Subject<StreamInput>();
let items: ShardOutput[] = [];
let taken = 0;
let soon = false;
let later: NodeJS.Timeout | undefined;
let statsAt = 0;
let runner: PredictionPipelineRunner | undefined;

// Batched: postMessage per prediction would cost more than the prediction. What came out goes back in the same turn
// of the event loop, with the counters as they are then (so /metrics is never behind a prediction a client has); a
// message that would only say how many inputs were taken waits up to 20 ms, and gauges (which walk every stream) and
// holdings go at most every 250 ms.
const flushNow = (final = false): void => {
  soon = false;
  clearTimeout(later);
  later = undefined;
  const out = items;
  items = [];
  const now = performance.now();
  const withGauges = final || now - statsAt >= 250;
  if (withGauges) statsAt = now;
  post({
    type: 'out',
    items: out,
    taken,
    ...((withGauges || out.length > 0) && { counters: runner!.counters() }),
    ...(withGauges && { gauges: runner!.gauges(), holdings: runner!.holdings() }),
  });
  taken = 0;
};
const flushSoon = (): void => {
  if (soon) return;
  soon = true;
  setImmediate(() => flushNow());
};
const flushLater = (): void => {
  if (soon || later !== undefined) return;
  later = setTimeout(() => flushNow(), 20);
};
const emit = (item: ShardOutput): void => {
  items.push(item);
  flushSoon();
};

try {
  const model = await loadModel(setup.modelDir);
  runner = await PredictionPipelineRunner.create({
    model,
    modelId: await modelId(setup.modelDir),
    backend: parseBackendName(setup.backend),
    gpuStreams: setup.gpuStreams,
    maxQueue: setup.maxQueue,
    log,
  });
  runner
    .run(input$, {
      refused: (refusal) => emit({ k: 'refused', refusal }),
      step: (ms, rows) => emit({ k: 'step', ms, rows }),
      onStream: (mark) => emit({ k: 'stream', mark }),
    })
    .subscribe({
      next: (prediction) => emit({ k: 'prediction', prediction }),
      error: (error: unknown) => fail(error),
      complete: () => {
        flushNow(true);
        post({ type: 'complete' });
      },
    });
  port.on('message', (message: ToShard) => {
    if (message.type === 'end') return input$.complete();
    const inputs = message.type === 'packed' ? decodeInputs(message.batch) : message.inputs;
    for (const input of inputs) input$.next(input);
    taken += inputs.length;
    flushLater();
  });
  post({ type: 'ready' });
} catch (error) {
  fail(error);
}

function fail(error: unknown): void {
  post({
    type: 'failed',
    message: error instanceof Error ? error.message : String(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
}
