/** A half-open time interval [start, end) in µs. */
export type Interval = readonly [start: number, end: number];

/** Sorted, disjoint, non-touching intervals covering the same instants as the input (empty ones dropped). */
export function union(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Instants in both sets. */
export function intersect(x: readonly Interval[], y: readonly Interval[]): Interval[] {
  const a = union(x);
  const b = union(y);
  const out: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const [a0, a1] = a[i] as Interval;
    const [b0, b1] = b[j] as Interval;
    const start = Math.max(a0, b0);
    const end = Math.min(a1, b1);
    if (end > start) out.push([start, end]);
    if (a1 < b1) i++;
    else j++;
  }
  return out;
}

/** Each interval's end moved later by `by` µs: "happened within the last `by` µs" of the original set. */
export const extendEnds = (intervals: readonly Interval[], by: number): Interval[] =>
  union(union(intervals).map(([a, b]) => [a, b + by] as Interval));

/** Whether `t` lies in one of the (sorted, disjoint) intervals. */
export function contains(intervals: readonly Interval[], t: number): boolean {
  let lo = 0;
  let hi = intervals.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((intervals[mid] as Interval)[1] <= t) lo = mid + 1;
    else hi = mid;
  }
  const hit = intervals[lo];
  return hit !== undefined && hit[0] <= t;
}
