import type { AnySourceEvent } from '../core/events.js';
import { payloadBytes } from '../core/events.js';

/**
 * The pending events of one source (stream × modality), kept sorted by (time, seq). Sources nearly always deliver
 * in order, so insertion is an append; an event that arrives out of order (within the tolerance) is placed by binary
 * search. Consumed events are released by advancing `head` and compacting now and then, not by shifting per event;
 * a released slot is cleared at once, so its event and payload are garbage from then on, not when the array is next
 * compacted (which, at a few hundred slots, held ~20 s of every stream's audio frames alive into the old generation).
 */
export class SourceBuffer {
  // Slots before #head are released and hold undefined.
  #events: (AnySourceEvent | undefined)[] = [];
  #head = 0;
  bytes = 0;

  get size(): number {
    return this.#events.length - this.#head;
  }

  /** Time of the earliest pending event, or +Infinity when empty. */
  firstTime(): number {
    return this.#head < this.#events.length ? this.#events[this.#head]!.time : Number.POSITIVE_INFINITY;
  }

  /** Time of the latest pending event, or -Infinity when empty. */
  lastTime(): number {
    return this.#head < this.#events.length
      ? this.#events[this.#events.length - 1]!.time
      : Number.NEGATIVE_INFINITY;
  }

  /** Inserts in (time, seq) order; returns false for an exact duplicate (same time and seq), which is not kept. */
  insert(event: AnySourceEvent): boolean {
    const events = this.#events;
    const last = events.length > this.#head ? events[events.length - 1]! : undefined;
    if (last === undefined || compare(last, event) < 0) {
      events.push(event);
    } else {
      let lo = this.#head;
      let hi = events.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compare(events[mid]!, event) < 0) lo = mid + 1;
        else hi = mid;
      }
      if (lo < events.length && compare(events[lo]!, event) === 0) return false;
      events.splice(lo, 0, event);
    }
    this.bytes += payloadBytes(event);
    return true;
  }

  /** The pending events with from <= time < to, in order (a copy: the buffer may change while a window is built). */
  range(from: number, to: number): AnySourceEvent[] {
    const events = this.#events;
    let i = this.#lowerBound(from);
    const out: AnySourceEvent[] = [];
    while (i < events.length && events[i]!.time < to) out.push(events[i++] as AnySourceEvent);
    return out;
  }

  /** Releases every event with time < before, telling each to `onRelease` in order; returns how many were released. */
  releaseBefore(before: number, onRelease?: (event: AnySourceEvent) => void): number {
    const events = this.#events;
    const start = this.#head;
    while (this.#head < events.length && events[this.#head]!.time < before) {
      const event = events[this.#head]!;
      this.bytes -= payloadBytes(event);
      events[this.#head++] = undefined;
      onRelease?.(event);
    }
    // Counted before compaction, which moves the head back to 0.
    const released = this.#head - start;
    // Compact once the dead prefix dominates, so the slots follow what is pending and pushes stay amortised O(1).
    if (this.#head > COMPACT_AFTER && this.#head * 2 > events.length) {
      this.#events = events.slice(this.#head);
      this.#head = 0;
    }
    return released;
  }

  /** Pending events and their payload bytes counted afresh from the buffer itself (for audits and tests). */
  recount(): { events: number; bytes: number } {
    let bytes = 0;
    for (let i = this.#head; i < this.#events.length; i++) bytes += payloadBytes(this.#events[i]!);
    return { events: this.#events.length - this.#head, bytes };
  }

  clear(): void {
    this.#events = [];
    this.#head = 0;
    this.bytes = 0;
  }

  #lowerBound(time: number): number {
    const events = this.#events;
    let lo = this.#head;
    let hi = events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (events[mid]!.time < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Released slots kept before compacting: copying the pending rest costs at most as many moves as were released. */
const COMPACT_AFTER = 64;

const compare = (a: AnySourceEvent, b: AnySourceEvent): number => a.time - b.time || a.seq - b.seq;
