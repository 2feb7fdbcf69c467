/** One place where two JSON values differ: where, and each side described (JSON text, `nothing`, `N entries`). */
export interface JsonDifference {
  /** Dotted path from `at` (`audio.melBands`, `weights[2].b`), or `at` itself (`(root)` when `at` is empty). */
  readonly path: string;
  readonly left: string;
  readonly right: string;
}

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));
const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

/**
 * Differences between two values as JSON sees them (members holding undefined vanish, key order does not matter),
 * keys visited in sorted order, at most `limit`. Arrays of different lengths are one difference at the array. Used
 * wherever a saved configuration is checked against the running one (feature configs, input layouts, datasets).
 */
export function jsonDifferences(left: unknown, right: unknown, at = '', limit = 10): JsonDifference[] {
  const out: JsonDifference[] = [];
  const join = (where: string, key: string, array: boolean): string =>
    array ? `${where}[${key}]` : where === '' ? key : `${where}.${key}`;
  const walk = (a: unknown, b: unknown, where: string): void => {
    if (out.length >= limit) return;
    const path = where === '' ? '(root)' : where;
    const objA = typeof a === 'object' && a !== null;
    const objB = typeof b === 'object' && b !== null;
    if (objA && objB && Array.isArray(a) === Array.isArray(b)) {
      if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) {
        out.push({ path, left: entries(a.length), right: entries(b.length) });
        return;
      }
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      for (const k of keys)
        walk(
          (a as Record<string, unknown>)[k],
          (b as Record<string, unknown>)[k],
          join(where, k, Array.isArray(a)),
        );
      return;
    }
    if (!Object.is(a, b)) out.push({ path, left: show(a), right: show(b) });
  };
  const normal = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  walk(normal(left), normal(right), at);
  return out;
}
