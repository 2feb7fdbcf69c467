// The main thread's cost of handing inputs to a shard thread (`serve --workers`): one second of 256 streams of the
// demo page's traffic (10 ms PCM16 frames copied into Node's buffer pool as the ingest session does, raw gray 64x48 at
// 10 fps, a progress bound every 20 ms), posted to a real worker thread in batches, as event objects (structured
// clone: what the shards took before) against one packed, transferred buffer (src/shards/input-batch.ts), in the same
// run. Main-thread CPU time per input; the worker only counts what arrives, so it stays off the measured thread's path.
// Run: npm run bench -- handoff
import { cpuUsage } from 'node:process';
import { Worker } from 'node:worker_threads';
import type { StreamInput } from '../src/core/events.js';
import { encodeInputs } from '../src/shards/input-batch.js';

const STREAMS = 256;
const ROUNDS = 5;

/** One second of the load, in arrival order: per 10 ms tick every stream's audio, and its video and progress due. */
function oneSecond(): StreamInput[] {
  const inputs: StreamInput[] = [];
  for (let tick = 0; tick < 100; tick++)
    for (let s = 0; s < STREAMS; s++) {
      const streamId = `load-${s}`;
      const time = 1_700_000_000_000_000 + tick * 10_000;
      const pcm = Buffer.allocUnsafe(320);
      inputs.push({
        streamId,
        modality: 'audio',
        time,
        seq: tick,
        payload: {
          sampleRate: 16_000,
          channels: 1,
          samples: new Int16Array(pcm.buffer, pcm.byteOffset, 160),
        },
      });
      if (tick % 10 === 0)
        inputs.push({
          streamId,
          modality: 'video',
          time,
          seq: tick / 10,
          payload: { format: 'gray', width: 64, height: 48, data: new Uint8Array(64 * 48) },
        });
      if (tick % 2 === 0) inputs.push({ control: 'progress', streamId, time });
    }
  return inputs;
}

const worker = new Worker(
  `const { parentPort } = require('node:worker_threads');
   let n = 0;
   parentPort.on('message', (m) => { if (m === 'count') parentPort.postMessage(n); else n++; });`,
  { eval: true },
);
const drained = () =>
  new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.postMessage('count');
  });

type Way = (batch: StreamInput[]) => void;
const ways: Record<string, Way> = {
  'objects (structured clone)': (batch) => worker.postMessage({ type: 'inputs', inputs: batch }),
  'packed buffer (transferred)': (batch) => {
    const packed = encodeInputs(batch);
    worker.postMessage({ type: 'inputs', batch: packed }, [packed.bytes]);
  },
};

/** Main-thread CPU µs per input over ROUNDS seconds of load, best of the rounds (the least disturbed). */
async function measure(way: Way, batchSize: number): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const inputs = oneSecond();
    const before = cpuUsage();
    for (let i = 0; i < inputs.length; i += batchSize) way(inputs.slice(i, i + batchSize));
    const used = cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / inputs.length);
    await drained();
  }
  return best;
}

console.log(`${STREAMS} streams, one second = ${oneSecond().length} inputs; main-thread CPU µs per input\n`);
console.log(`| inputs per message | ${Object.keys(ways).join(' | ')} | packed / objects |`);
console.log(
  `|---|${Object.keys(ways)
    .map(() => '---|')
    .join('')}---|`,
);
for (const batchSize of [4, 8, 16, 32, 128]) {
  const [objects, packed] = [
    await measure(ways['objects (structured clone)']!, batchSize),
    await measure(ways['packed buffer (transferred)']!, batchSize),
  ];
  console.log(
    `| ${batchSize} | ${objects!.toFixed(2)} | ${packed!.toFixed(2)} | ${(packed! / objects!).toFixed(2)}× |`,
  );
}
await worker.terminate();
