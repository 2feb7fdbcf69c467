// Subscribers for bench/server.ts, in a process of their own so that the producers' sending loop does not delay the
// moment a prediction is seen. Args: URL COUNT COUNT_FROM_US. Prints "ready", then on SIGINT one JSON line of results.
import WebSocket from 'ws';
import { wallClockMicros } from '../src/core/time.js';

const [url, count, countFrom] = process.argv.slice(2);
const latencies: number[] = [];
let predictions = 0;
let dropped = 0;
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
      if (m.dropped) dropped += m.dropped;
      if (m.windowEnd < Number(countFrom)) return;
      predictions++;
      latencies.push((wallClockMicros() - m.windowEnd) / 1000);
    });
    ws.send(JSON.stringify({ subscribe: '*' }));
    return ws;
  }),
);
process.once('SIGINT', () => {
  for (const ws of sockets) ws.close();
  process.stdout.write(`${JSON.stringify({ latencies, predictions, dropped })}\n`, () => process.exit(0));
});
console.log('ready');
