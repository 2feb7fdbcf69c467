// A preload for finding where a latency tail comes from, thread by thread: `node --import ./bench/thread-stalls.mjs`
// (a worker thread inherits it with the rest of execArgv). Each thread appends JSON lines to
// $STALL_DIR/<pid>-<main|threadId>.jsonl (default /tmp/stalls, which must exist), with wall-clock times in ms since
// the epoch, to line up against per-window latencies taken elsewhere:
//   {"t", "gc": kind, "ms"}  every garbage collection (perf_hooks: 1 scavenge, 4 mark-compact, 8 incremental
//                            marking, 16 weak callbacks)
//   {"t", "stall": ms}       every event-loop turn that kept a 1 ms timer waiting more than 6 ms
// Optional, in worker threads only:
//   SNAP_AT=ms[,ms...]       a heap snapshot at each time after the thread started (it stalls the thread for seconds)
//   PROMO_AT=from,to         V8's sampling heap profiler between the two times, keeping only objects that survived
//                            scavenges and died in a mark-compact: what fills the old generation and sets off major
//                            GCs; the top allocation sites in KiB/s to $STALL_DIR/promoted-<threadId>.txt
import { appendFileSync, writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { isMainThread, threadId } from 'node:worker_threads';

const dir = process.env.STALL_DIR ?? '/tmp/stalls';
const file = `${dir}/${process.pid}-${isMainThread ? 'main' : threadId}.jsonl`;
const lines = [];
const flush = () => {
  if (lines.length > 0) appendFileSync(file, `${lines.splice(0).join('\n')}\n`);
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    lines.push(
      JSON.stringify({ t: performance.timeOrigin + e.startTime, gc: e.detail?.kind, ms: e.duration }),
    );
}).observe({ entryTypes: ['gc'] });
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  if (now - last > 6) lines.push(JSON.stringify({ t: performance.timeOrigin + last, stall: now - last }));
  last = now;
}, 1).unref();
setInterval(flush, 500).unref();
process.on('exit', flush);

if (!isMainThread && process.env.SNAP_AT) {
  const { writeHeapSnapshot } = await import('node:v8');
  for (const at of process.env.SNAP_AT.split(','))
    setTimeout(
      () => writeHeapSnapshot(`${dir}/${process.pid}-${threadId}-${at}.heapsnapshot`),
      Number(at),
    ).unref();
}

if (!isMainThread && process.env.PROMO_AT) {
  const { Session } = await import('node:inspector/promises');
  const [from, to] = process.env.PROMO_AT.split(',').map(Number);
  setTimeout(async () => {
    const session = new Session();
    session.connect();
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: false,
    });
    setTimeout(async () => {
      const { profile } = await session.post('HeapProfiler.stopSampling');
      const bySite = new Map();
      const walk = (node, stack) => {
        const { functionName, url, lineNumber } = node.callFrame;
        const frame = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber}`;
        const site = [...stack.slice(-2), frame].join(' < ');
        if (node.selfSize > 0) bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
        for (const child of node.children) walk(child, [...stack, frame]);
      };
      walk(profile.head, []);
      const seconds = (to - from) / 1000;
      const top = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25);
      writeFileSync(
        `${dir}/promoted-${threadId}.txt`,
        top.map(([site, bytes]) => `${(bytes / 1024 / seconds).toFixed(1)} KiB/s  ${site}`).join('\n'),
      );
    }, to - from).unref();
  }, from).unref();
}
