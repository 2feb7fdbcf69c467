// Subscribers for bench/server.ts and bench/soak.ts, in a process of their own so that the producers' sending loop
// does not delay the moment a prediction is seen. Args: URL COUNT COUNT_FROM_US [INTERVAL_S]. Prints "ready"; with an
// interval, one JSON line per interval ({"minute": n, predictions, dropped, p50, p99} of that interval); on SIGINT one
// JSON line of the results since COUNT_FROM_US.
import WebSocket from 'ws';
import { wallClockMicros } from '../src/core/time.js';

const [url, count, countFrom, interval] = process.argv.slice(2);
const latencies: number[] = [];
let predictions = 0;
let dropped = 0;
let window = { latencies: [] as number[], predictions: 0, dropped: 0 };

const quantile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;

const sockets = await Promise.all(
  Array.from({ length: Number(count) }, async () => {
    const ws = new WebSocket(`${url}/subscribe`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type !== 'prediction') return;
      const latency = (wallClockMicros() - m.windowEnd) / 1000;
      window.predictions++;
      window.latencies.push(latency);
      if (m.dropped) {
        dropped += m.dropped;
        window.dropped += m.dropped;
      }
      if (m.windowEnd < Number(countFrom)) return;
      predictions++;
      latencies.push(latency);
    });
    ws.send(JSON.stringify({ subscribe: '*' }));
    return ws;
  }),
);
if (interval !== undefined) {
  let minute = 0;
  setInterval(() => {
    const sorted = window.latencies.sort((a, b) => a - b);
    minute++;
    console.log(
      JSON.stringify({
        minute,
        predictions: window.predictions,
        dropped: window.dropped,
        p50: quantile(sorted, 0.5),
        p99: quantile(sorted, 0.99),
      }),
    );
    window = { latencies: [], predictions: 0, dropped: 0 };
  }, Number(interval) * 1000);
}
process.once('SIGINT', () => {
  for (const ws of sockets) ws.close();
  // Only the totals: latencies of a long run stay in this process.
  const { user, system } = process.cpuUsage();
  process.stdout.write(
    `${JSON.stringify({ latencies, predictions, dropped, cpuSeconds: (user + system) / 1e6 })}\n`,
    () => process.exit(0),
  );
});
console.log('ready');
