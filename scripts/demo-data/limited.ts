/**
 * Runs `tasks` with at most `limit` at once, keeping the results in order: media conversion spawns sox, ffmpeg,
 * espeak-ng and fluidsynth, and more than two at a time would starve whatever else shares a small machine.
 */
export async function limited<T>(limit: number, tasks: readonly (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await (tasks[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return out;
}
