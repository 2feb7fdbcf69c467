import { describe, expect, it } from 'vitest';
import { BraidError, InvalidOptionError } from '../../src/core/errors.js';
import { seconds } from '../../src/core/time.js';
import { decodeFloats, encodeFloats, StateStore } from '../../src/model/state-store.js';

const policy = { gapReset: seconds(2), idleExpiry: seconds(60) };

/** Runs a fake "step" that adds `delta` to every state float, committing the result like the runtime does. */
function step(
  store: StateStore,
  id: string,
  index: number,
  start: number,
  end: number,
  delta: number,
  now = 0,
) {
  const lease = store.acquire(id, start, now);
  const next = lease.entry.state.map((v) => v + delta);
  const committed = store.commit(lease, next, index, end, now);
  return { reset: lease.reset, committed, state: Array.from(decodeState(store, id)) };
}

function decodeState(store: StateStore, id: string): Float32Array {
  const s = store.snapshot().streams.find((e) => e.streamId === id);
  if (!s) throw new Error(`no state for ${id}`);
  return decodeFloats(s.state, store.stateSize, id);
}

describe('StateStore', () => {
  it('starts a stream from zeros, carries the state across adjacent windows, and resets after a long gap', () => {
    const store = new StateStore('gru', 3, policy);
    expect(step(store, 'a', 0, 0, 1_000_000, 1).reset).toBe('start');
    expect(step(store, 'a', 1, 1_000_000, 2_000_000, 1)).toMatchObject({
      reset: undefined,
      state: [2, 2, 2],
    });
    // A gap of exactly the limit keeps the state; one µs more resets it.
    expect(step(store, 'a', 3, 4_000_000, 5_000_000, 1)).toMatchObject({
      reset: undefined,
      state: [3, 3, 3],
    });
    expect(step(store, 'a', 6, 7_000_001, 8_000_000, 1)).toMatchObject({ reset: 'gap', state: [1, 1, 1] });
  });

  it('overlapping windows (hop shorter than the window) never count as a gap', () => {
    const store = new StateStore('lstm', 2, policy);
    step(store, 'a', 0, 0, 1_000_000, 1);
    expect(step(store, 'a', 1, 500_000, 1_500_000, 1)).toMatchObject({
      reset: undefined,
      state: [2, 2, 2, 2],
    });
  });

  it('resets on request, and a step that read the state before the reset does not overwrite it', () => {
    const store = new StateStore('gru', 2, policy);
    step(store, 'a', 0, 0, 10, 5);
    const lease = store.acquire('a', 10, 0);
    expect(store.reset('a')).toBe(true);
    expect(store.commit(lease, new Float32Array([9, 9]), 1, 20, 0)).toBe(false);
    expect(Array.from(decodeState(store, 'a'))).toEqual([0, 0]);
    expect(store.reset('unknown')).toBe(false);
  });

  it('a stream closed while its step ran is not brought back by the commit', () => {
    const store = new StateStore('gru', 2, policy);
    const lease = store.acquire('a', 0, 0);
    expect(store.delete('a')).toBe(true);
    expect(store.commit(lease, new Float32Array([1, 1]), 0, 10, 0)).toBe(false);
    expect(store.size).toBe(0);
  });

  it('forgets streams idle longer than the expiry, by the wall clock', () => {
    const store = new StateStore('gru', 1, policy);
    step(store, 'old', 0, 0, 10, 1, 0);
    step(store, 'new', 0, 0, 10, 1, seconds(30));
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

  it('snapshots to JSON and restores every state exactly (floats through base64)', () => {
    const store = new StateStore('lstm', 3, policy);
    const awkward = new Float32Array([Math.PI, -0, 1e-42, -3.4e38, 0.1, 7]);
    const lease = store.acquire('s1', 0, 0);
    store.commit(lease, awkward, 4, 500, 0);
    step(store, 's2', 9, 100, 200, 2);
    const json = JSON.parse(JSON.stringify(store.snapshot()));
    const copy = new StateStore('lstm', 3, policy);
    copy.restore(json, 0);
    expect(copy.size).toBe(2);
    expect(new Uint32Array(decodeState(copy, 's1').buffer)).toEqual(new Uint32Array(awkward.buffer));
    expect(copy.lastIndex('s2')).toBe(9);
    // Restored streams continue (no start reset) and apply the gap policy from the restored end time.
    expect(copy.acquire('s1', 500, 0).reset).toBeUndefined();
    expect(copy.acquire('s2', 200 + seconds(3), 0).reset).toBe('gap');
  });

  it('refuses a snapshot of another model or a malformed one, changing nothing', () => {
    const store = new StateStore('gru', 4, policy);
    step(store, 'keep', 0, 0, 10, 1);
    const other = new StateStore('gru', 5, policy);
    step(other, 'x', 0, 0, 10, 1);
    const err = (f: () => void): BraidError => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(BraidError);
        return e as BraidError;
      }
      throw new Error('expected a throw');
    };
    expect(err(() => store.restore(other.snapshot(), 0)).message).toContain('hidden=5');
    const lstm = { ...store.snapshot(), cell: 'lstm' };
    expect(err(() => store.restore(lstm, 0)).message).toContain('lstm');
    const short = {
      ...store.snapshot(),
      streams: [{ streamId: 'a', lastIndex: 0, lastEnd: 0, state: encodeFloats(new Float32Array(3)) }],
    };
    expect(err(() => store.restore(short, 0)).message).toContain(
      'expected 4 float32 (16 bytes), got 12 bytes',
    );
    expect(err(() => store.restore({ format: 'x' }, 0)).code).toBe('BRAID_ERR_MODEL');
    expect(store.has('keep')).toBe(true);
  });
});
