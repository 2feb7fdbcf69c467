// AudioWorklet: cuts the microphone's samples, at the AudioContext's own rate (the device's, usually 44.1 or 48 kHz:
// the server resamples), into ~20 ms mono PCM16 frames and posts them with their running sample count, from which
// the page derives each frame's capture time. Once the page has sent the stream's window grid (its `ready`) and the
// capture time of sample 0, a frame also ends where a window ends: the server closes a window when its last sample
// has arrived, so a frame running past the end would hold the window back until the frame is whole (up to 20 ms).
import { frameSamplesToWindowEnd } from '/lib/client/window-grid.js';

class PcmFramer extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the AudioWorkletGlobalScope's: the context's rate.
    this.size = Math.round(sampleRate / 50);
    // A frame cut at a window end may run to 1.5 frames, so that no sliver of a frame is left before the end.
    this.frame = new Int16Array(Math.ceil(this.size * 1.5));
    this.filled = 0;
    this.samplesBefore = 0;
    this.length = this.size;
    this.timing = null;
    this.port.onmessage = ({ data }) => {
      this.timing = data;
      if (this.filled === 0) this.length = this.lengthAt(this.samplesBefore);
    };
  }
  /** Samples in the frame starting at sample `first`: up to the next window end when it is near, else 20 ms. */
  lengthAt(first) {
    if (!this.timing) return this.size;
    const { start, grid } = this.timing;
    // The page stamps the frame so (start + ⌊first × 10⁶ / rate⌋), and the server takes its end from that stamp.
    return frameSamplesToWindowEnd(
      grid,
      start + Math.floor((first * 1e6) / sampleRate),
      sampleRate,
      this.size,
    );
  }
  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.length) {
        const pcm = this.frame.slice(0, this.filled);
        // endedAt: the context time of the frame's end, so the page can tell how long the message waited for it.
        const endedAt = currentTime + (i + 1) / sampleRate;
        this.port.postMessage({ samplesBefore: this.samplesBefore, pcm: pcm.buffer, endedAt }, [pcm.buffer]);
        this.samplesBefore += this.filled;
        this.filled = 0;
        this.length = this.lengthAt(this.samplesBefore);
      }
    }
    return true;
  }
}
registerProcessor('pcm-framer', PcmFramer);
