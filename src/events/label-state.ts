import type { Micros } from '../core/time.js';
import type { EventSettings } from './settings.js';

/** Where one label's state may change: the window's score, its index, its end, and the boundary it starts at. */
export interface LabelWindow {
  readonly score: number;
  readonly windowIndex: number;
  /**
   * The capture time the window's new data starts at: the end of the stream's previous window (or this window's
   * start, for the first one or after a gap). A change seen in this window happened there.
   */
  readonly boundary: Micros;
  readonly windowEnd: Micros;
}

/** A change of state, before it is told which stream and label it is about. */
export interface LabelChange {
  readonly state: 'on' | 'off';
  readonly time: Micros;
  readonly score: number;
  readonly windowIndex: number;
}

/**
 * One label's state: `on` or off, and a change that began but has not yet lasted its minimum duration. A change is
 * told once it has lasted (or at once, with no minimum), with the time, score and window it began at, so an event's
 * time is always the capture time of the change, however long it took to be sure of it.
 */
export interface LabelState {
  readonly on: boolean;
  readonly pending?: LabelChange;
}

export const INITIAL_LABEL_STATE: LabelState = { on: false };

/**
 * The state after one window. Off, a score ≥ `on` begins a change to on; it goes on while the scores stay ≥ `off`
 * and is told once `minOn` has passed from its start to a window's end, and dropped if a score falls below `off`
 * first. On, the same with the roles swapped: a score < `off` begins it, scores < `on` keep it, `minOff` confirms it.
 * So a told on lasts at least `minOn` and a told off at least `minOff`, and a score between the two thresholds never
 * changes anything.
 */
export function stepLabel(
  state: LabelState,
  s: EventSettings,
  w: LabelWindow,
): { state: LabelState; change?: LabelChange } {
  const leaves = state.on ? w.score < s.off : w.score >= s.on;
  const stays = state.on ? w.score < s.on : w.score >= s.off;
  let pending = state.pending;
  if (pending === undefined) {
    if (!leaves) return { state };
    pending = {
      state: state.on ? 'off' : 'on',
      time: w.boundary,
      score: w.score,
      windowIndex: w.windowIndex,
    };
  } else if (!stays) return { state: { on: state.on } };
  const min = state.on ? s.minOff : s.minOn;
  if (w.windowEnd - pending.time >= min) return { state: { on: !state.on }, change: pending };
  return { state: { on: state.on, pending } };
}

/**
 * The change a label gets when its stream closes: on (a change to off pending or not) turns off — at the start of
 * the pending change, when the scores had already fallen, or else at the stream's last window end. A pending change
 * to on is dropped: it never lasted.
 */
export function closeLabel(
  state: LabelState,
  last: { readonly windowEnd: Micros; readonly windowIndex: number; readonly score: number },
): LabelChange | undefined {
  if (!state.on) return undefined;
  return (
    state.pending ?? { state: 'off', time: last.windowEnd, score: last.score, windowIndex: last.windowIndex }
  );
}
