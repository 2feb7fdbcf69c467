// AudioWorklet: cuts the microphone's samples, at the AudioContext's own rate (the device's, usually 44.1 or 48 kHz:
// the server resamples), into 20 ms mono PCM16 frames and posts them with their running sample count, from which
// the page derives each frame's capture time.
class PcmFramer extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the AudioWorkletGlobalScope's: the context's rate.
    this.size = Math.round(sampleRate / 50);
    this.frame = new Int16Array(this.size);
    this.filled = 0;
    this.samplesBefore = 0;
  }
  process(inputs) {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.size) {
        // Transferring the buffer detaches this.frame, so count with the size.
        this.port.postMessage({ samplesBefore: this.samplesBefore, pcm: this.frame.buffer }, [
          this.frame.buffer,
        ]);
        this.samplesBefore += this.size;
        this.frame = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor('pcm-framer', PcmFramer);
