import { describe, expect, it } from 'vitest';
import { BraidError, InvalidOptionError } from '../../src/core/errors.js';
import { seconds } from '../../src/core/time.js';
import { FRESH_SLOT, HostStateSlots, type StateSlots } from '../../src/model/state-slots.js';
import { decodeFloats, encodeFloats, type Lease, StateStore } from '../../src/model/state-store.js';

const policy = { gapReset: seconds(2), idleExpiry: seconds(60) };

/**
 * Runs a fake kernel step that adds `delta` to every state float: it reads the slot (zeros when the lease is fresh)
 * and writes the slot, as a kernel does, then commits like the runtime does.
 */
async function step(
  store: StateStore,
  id: string,
  index: number,
  start: number,
  end: number,
  delta: number,
  now = 0,
) {
  const lease = store.acquire(id, start, now);
  fakeKernel(store, lease, delta);
  const committed = store.commit(lease, index, end, now);
  return { reset: lease.reset, committed, state: Array.from(await decodeState(store, id)) };
}

function fakeKernel(store: StateStore, lease: Lease, delta: number): void {
  const slot = store.slotOf(lease);
  const row = (store.slots as HostStateSlots).row(slot & ~FRESH_SLOT);
  const from = slot & FRESH_SLOT ? new Float32Array(row.length) : row;
  row.set(from.map((v) => v + delta));
}

async function decodeState(store: StateStore, id: string): Promise<Float32Array> {
  const s = (await store.snapshot()).streams.find((e) => e.streamId === id);
  if (!s) throw new Error(`no state for ${id}`);
  return decodeFloats(s.state, store.stateSize, id);
}

describe('StateStore', () => {
  it('starts a stream from zeros, carries the state across adjacent windows, and resets after a long gap', async () => {
    const store = new StateStore('gru', 3, policy);
    expect((await step(store, 'a', 0, 0, 1_000_000, 1)).reset).toBe('start');
    expect(await step(store, 'a', 1, 1_000_000, 2_000_000, 1)).toMatchObject({
      reset: undefined,
      state: [2, 2, 2],
    });
    // A gap of exactly the limit keeps the state; one µs more resets it.
    expect(await step(store, 'a', 3, 4_000_000, 5_000_000, 1)).toMatchObject({
      reset: undefined,
      state: [3, 3, 3],
    });
    expect(await step(store, 'a', 6, 7_000_001, 8_000_000, 1)).toMatchObject({
      reset: 'gap',
      state: [1, 1, 1],
    });
  });

  it('overlapping windows (hop shorter than the window) never count as a gap', async () => {
    const store = new StateStore('lstm', 2, policy);
    await step(store, 'a', 0, 0, 1_000_000, 1);
    expect(await step(store, 'a', 1, 500_000, 1_500_000, 1)).toMatchObject({
      reset: undefined,
      state: [2, 2, 2, 2],
    });
  });

  it('resets on request, and a step that read the state before the reset does not overwrite it', async () => {
    const store = new StateStore('gru', 2, policy);
    await step(store, 'a', 0, 0, 10, 5);
    const lease = store.acquire('a', 10, 0);
    expect(store.reset('a')).toBe(true);
    // The step had started: its kernel writes the slot anyway, but the state reads as zeros and nothing commits.
    fakeKernel(store, lease, 9);
    expect(store.commit(lease, 1, 20, 0)).toBe(false);
    expect(Array.from(await decodeState(store, 'a'))).toEqual([0, 0]);
    expect(store.lastIndex('a')).toBe(0);
    expect(store.reset('unknown')).toBe(false);
  });

  it('a stream closed while its step ran is not brought back by the commit', async () => {
    const store = new StateStore('gru', 2, policy);
    const lease = store.acquire('a', 0, 0);
    expect(store.delete('a')).toBe(true);
    expect(store.commit(lease, 0, 10, 0)).toBe(false);
    expect(store.size).toBe(0);
  });

  it('forgets streams idle longer than the expiry, by the wall clock', async () => {
    const store = new StateStore('gru', 1, policy);
    await step(store, 'old', 0, 0, 10, 1, 0);
    await step(store, 'new', 0, 0, 10, 1, seconds(30));
    expect(store.expireIdle(seconds(60))).toEqual([]);
    expect(store.expireIdle(seconds(60) + 1)).toEqual(['old']);
    expect(store.has('old')).toBe(false);
    expect(store.has('new')).toBe(true);
  });

  it('refuses a gap reset longer than the idle expiry (replays would keep state the live run forgot)', () => {
    expect(() => new StateStore('gru', 1, { gapReset: seconds(61), idleExpiry: seconds(60) })).toThrow(
      InvalidOptionError,
    );
    expect(() => new StateStore('gru', 1, { gapReset: seconds(60), idleExpiry: seconds(60) })).not.toThrow();
  });

  it('snapshots to JSON and restores every state exactly (floats through base64)', async () => {
    const store = new StateStore('lstm', 3, policy);
    const awkward = new Float32Array([Math.PI, -0, 1e-42, -3.4e38, 0.1, 7]);
    const lease = store.acquire('s1', 0, 0);
    (store.slots as HostStateSlots).row(lease.entry.slot).set(awkward);
    store.commit(lease, 4, 500, 0);
    await step(store, 's2', 9, 100, 200, 2);
    const json = JSON.parse(JSON.stringify(await store.snapshot()));
    const copy = new StateStore('lstm', 3, policy);
    copy.restore(json, 0);
    expect(copy.size).toBe(2);
    expect(new Uint32Array((await decodeState(copy, 's1')).buffer)).toEqual(new Uint32Array(awkward.buffer));
    expect(copy.lastIndex('s2')).toBe(9);
    // Restored streams continue (no start reset) and apply the gap policy from the restored end time.
    expect(copy.acquire('s1', 500, 0).reset).toBeUndefined();
    expect(copy.acquire('s2', 200 + seconds(3), 0).reset).toBe('gap');
  });

  it('refuses a snapshot of another model or a malformed one, changing nothing', async () => {
    const store = new StateStore('gru', 4, policy);
    await step(store, 'keep', 0, 0, 10, 1);
    const other = new StateStore('gru', 5, policy);
    await step(other, 'x', 0, 0, 10, 1);
    const otherSnapshot = await other.snapshot();
    const mine = await store.snapshot();
    const err = (f: () => void): BraidError => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(BraidError);
        return e as BraidError;
      }
      throw new Error('expected a throw');
    };
    expect(err(() => store.restore(otherSnapshot, 0)).message).toContain('hidden=5');
    const lstm = { ...mine, cell: 'lstm' };
    expect(err(() => store.restore(lstm, 0)).message).toContain('lstm');
    const short = {
      ...mine,
      streams: [{ streamId: 'a', lastIndex: 0, lastEnd: 0, state: encodeFloats(new Float32Array(3)) }],
    };
    expect(err(() => store.restore(short, 0)).message).toContain(
      'expected 4 float32 (16 bytes), got 12 bytes',
    );
    expect(err(() => store.restore({ format: 'x' }, 0)).code).toBe('BRAID_ERR_MODEL');
    expect(store.has('keep')).toBe(true);
  });

  it('hands out slots from a free list: closed and expired streams give theirs back, new ones reuse them', async () => {
    const store = new StateStore('gru', 2, policy);
    const used = new Set<number>();
    for (let round = 0; round < 50; round++) {
      for (const id of ['a', 'b', 'c']) {
        const lease = store.acquire(`${id}${round}`, 0, 0);
        used.add(lease.entry.slot);
        expect(lease.reset).toBe('start');
        // A slot a closed stream left behind holds its old state; the new stream's first step must not see it.
        expect((store.slotOf(lease) & FRESH_SLOT) !== 0).toBe(true);
        fakeKernel(store, lease, round + 1);
        store.commit(lease, 0, 10, 0);
        expect(Array.from(await decodeState(store, `${id}${round}`))).toEqual([round + 1, round + 1]);
      }
      for (const id of ['a', 'b', 'c']) store.delete(`${id}${round}`);
    }
    expect([...used].sort()).toEqual([0, 1, 2]);
  });

  it('refuses a new stream when every slot is in use, naming the table size', () => {
    const tiny = new (class extends HostStateSlots {
      override readonly capacity = 2;
    })(2);
    const store = new StateStore('gru', 2, policy, tiny);
    store.acquire('a', 0, 0);
    store.acquire('b', 0, 0);
    expect(store.free).toBe(0);
    expect(() => store.acquire('c', 0, 0)).toThrow(/all 2 state slots are in use/);
    store.delete('a');
    expect(store.free).toBe(1);
    expect(store.acquire('c', 0, 0).entry.slot).toBe(0);
  });

  it('moves every state into another table; states it cannot read back start from zeros and are named', async () => {
    const store = new StateStore('gru', 2, policy);
    await step(store, 'kept', 0, 0, 10, 3);
    await step(store, 'distrusted', 0, 0, 10, 4);
    await step(store, 'reset', 0, 0, 10, 5);
    store.reset('reset');
    const target = new HostStateSlots(2);
    const moved = await store.moveTo(target, new Set(['distrusted']));
    expect(moved).toEqual({ carried: 1, lost: ['distrusted'] });
    expect(store.slots).toBe(target);
    expect(Array.from(await decodeState(store, 'kept'))).toEqual([3, 3]);
    expect(Array.from(await decodeState(store, 'distrusted'))).toEqual([0, 0]);
    expect(Array.from(await decodeState(store, 'reset'))).toEqual([0, 0]);
    // A table that cannot be read (a lost GPU): every stepped state is lost, the streams and indices stay.
    const unreadable: StateSlots = {
      stateSize: 2,
      capacity: 8,
      write: () => {},
      read: () => Promise.reject(new Error('device lost')),
    };
    const again = new StateStore('gru', 2, policy, unreadable);
    again.acquire('x', 0, 0);
    again.commit(again.acquire('y', 0, 0), 3, 10, 0);
    expect(await again.moveTo(new HostStateSlots(2))).toEqual({ carried: 0, lost: ['y'] });
    expect(again.lastIndex('y')).toBe(3);
    expect(again.acquire('y', 10, 0).reset).toBeUndefined();
  });
});
