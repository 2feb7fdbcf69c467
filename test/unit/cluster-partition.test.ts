import { describe, expect, it } from 'vitest';
import { decodeInput, encodeInput } from '../../src/cluster/codec.js';
import {
  assignedPartitions,
  compareIds,
  nextId,
  partitionKeys,
  partitionOf,
} from '../../src/cluster/partition.js';
import type { StreamInput } from '../../src/core/events.js';

/** XREAD hands fields back as Buffers: name, value, name, value... */
const asRead = (fields: (string | Buffer)[]) =>
  fields.map((f) => (typeof f === 'string' ? Buffer.from(f) : f));

describe('cluster partitions', () => {
  it('puts a stream in one partition, the same everywhere, spread over all of them', () => {
    expect(partitionOf('s1', 16)).toBe(partitionOf('s1', 16));
    const used = new Set(Array.from({ length: 400 }, (_, i) => partitionOf(`mic-${i}`, 16)));
    expect(used.size).toBe(16);
    for (const id of ['a', 'mic-7', 'cam:1@x']) expect(partitionOf(id, 5)).toBeLessThan(5);
  });

  it('keeps every key of a partition in one Redis Cluster slot (one hash tag)', () => {
    const keys = Object.values(partitionKeys(3));
    expect(keys.every((k) => k.includes('{3}'))).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('assigns each partition to exactly one live worker, p mod N by sorted id', () => {
    const live = ['w-b', 'w-a', 'w-c'];
    const all = live.flatMap((w) => assignedPartitions(w, live, 16));
    expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, p) => p));
    expect(assignedPartitions('w-a', live, 16)).toEqual([0, 3, 6, 9, 12, 15]);
    expect(assignedPartitions('gone', live, 16)).toEqual([]);
  });

  it('orders entry ids as numbers and finds the next one', () => {
    expect(compareIds('9-0', '10-0')).toBe(-1);
    expect(compareIds('10-2', '10-10')).toBe(-1);
    expect(compareIds('5-5', '5-5')).toBe(0);
    expect(nextId('17-3')).toBe('17-4');
  });
});

describe('cluster entry codec', () => {
  it('round-trips audio and video with their bytes outside the JSON, and controls and text as JSON', () => {
    const samples = Int16Array.from([1, -2, 300, -32768, 32767]);
    const inputs: StreamInput[] = [
      { control: 'open', streamId: 's', modalities: ['audio', 'video'] },
      {
        streamId: 's',
        modality: 'audio',
        time: 10,
        seq: 0,
        payload: { sampleRate: 16000, channels: 1, samples },
      },
      {
        streamId: 's',
        modality: 'video',
        time: 20,
        seq: 0,
        payload: { format: 'gray', width: 2, height: 2, data: Uint8Array.from([1, 2, 3, 4]) },
      },
      { streamId: 's', modality: 'text', time: 30, seq: 0, payload: { text: 'hello' } },
      { control: 'progress', streamId: 's', time: 40 },
    ];
    for (const input of inputs) {
      const fields = encodeInput(input);
      expect(decodeInput(asRead(fields))).toEqual(input);
    }
    const audio = encodeInput(inputs[1]!);
    expect(audio[1]).not.toContain('samples');
    expect((audio[3] as Buffer).byteLength).toBe(samples.byteLength);
  });

  it("says what is wrong with an entry that is not braid's", () => {
    expect(() => decodeInput(asRead(['x', '1']))).toThrow(/stream entry without an input/);
  });
});
