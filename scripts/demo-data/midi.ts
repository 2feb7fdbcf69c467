// Standard MIDI files for fluidsynth to render as training music: a few lines of bytes, so no library.

export interface MidiNote {
  /** Start in ticks. */
  readonly tick: number;
  readonly duration: number;
  readonly channel: number;
  readonly key: number;
  readonly velocity: number;
}

const TICKS_PER_QUARTER = 480;

/** A MIDI variable-length quantity: 7 bits a byte, high bit set on all but the last. */
function vlq(value: number): number[] {
  const bytes = [value & 0x7f];
  for (let v = value >>> 7; v > 0; v >>>= 7) bytes.unshift((v & 0x7f) | 0x80);
  return bytes;
}

/**
 * A format-0 Standard MIDI File: tempo, one program change per channel (`programs[channel]`, GM numbers from 0;
 * channel 9 is GM percussion and needs none), then the notes.
 */
export function midiFile(
  notes: readonly MidiNote[],
  programs: Readonly<Record<number, number>>,
  bpm: number,
): Uint8Array {
  const events: { tick: number; order: number; bytes: number[] }[] = [];
  const tempo = Math.round(60_000_000 / bpm);
  events.push({
    tick: 0,
    order: 0,
    bytes: [0xff, 0x51, 0x03, tempo >> 16, (tempo >> 8) & 0xff, tempo & 0xff],
  });
  for (const [channel, program] of Object.entries(programs))
    events.push({ tick: 0, order: 1, bytes: [0xc0 | Number(channel), program] });
  for (const n of notes) {
    // Note-offs sort before note-ons at the same tick, so a repeated key is released before it is struck again.
    events.push({ tick: n.tick + n.duration, order: 2, bytes: [0x80 | n.channel, n.key, 0] });
    events.push({ tick: n.tick, order: 3, bytes: [0x90 | n.channel, n.key, n.velocity] });
  }
  events.sort((a, b) => a.tick - b.tick || a.order - b.order);
  const track: number[] = [];
  let last = 0;
  for (const e of events) {
    track.push(...vlq(e.tick - last), ...e.bytes);
    last = e.tick;
  }
  track.push(0x00, 0xff, 0x2f, 0x00);
  const u32 = (v: number): number[] => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  const header = [
    0x4d,
    0x54,
    0x68,
    0x64,
    ...u32(6),
    0,
    0,
    0,
    1,
    TICKS_PER_QUARTER >> 8,
    TICKS_PER_QUARTER & 0xff,
  ];
  return Uint8Array.from([...header, 0x4d, 0x54, 0x72, 0x6b, ...u32(track.length), ...track]);
}

/** General MIDI melodic programs used: pianos, chromatic percussion, organs, guitars, basses, strings, brass, reeds,
 * pipes, synth leads and pads — not the choir, voice and "voice lead" programs (52–54, 85, 91), which imitate singing. */
const MELODIC = [
  0, 1, 4, 6, 8, 11, 12, 13, 16, 19, 21, 24, 25, 27, 29, 30, 40, 41, 42, 46, 48, 56, 57, 60, 61, 64, 65, 68,
  71, 73, 75, 80, 81, 87,
];
const PADS = [0, 4, 16, 19, 48, 49, 50, 88, 89, 92, 94];
const BASSES = [32, 33, 34, 35, 38, 39];
const MAJOR = [0, 2, 4, 5, 7, 9, 11];
const MINOR = [0, 2, 3, 5, 7, 8, 10];

/**
 * A random piece of about `seconds`: chords on a pad or piano, a bass line, a melody on some instrument, and drums
 * half of the time, in a random key, scale and tempo. Pieces differ in timbre and rhythm more than in composition.
 */
export function randomPiece(random: () => number, seconds: number): Uint8Array {
  const pick = <T>(list: readonly T[]): T =>
    list[Math.min(list.length - 1, Math.floor(random() * list.length))] as T;
  const bpm = Math.round(70 + random() * 90);
  const root = 48 + Math.floor(random() * 12);
  const scale = random() < 0.5 ? MAJOR : MINOR;
  const degree = (d: number): number => root + 12 * Math.floor(d / 7) + (scale[((d % 7) + 7) % 7] as number);
  const beats = Math.ceil((seconds * bpm) / 60);
  const q = TICKS_PER_QUARTER;
  const notes: MidiNote[] = [];
  const parts = { chords: random() < 0.85, bass: random() < 0.7, drums: random() < 0.5 };
  const progression = [0, 3, 4, 5, 0, 5, 3, 4].map((d) => (random() < 0.3 ? pick([0, 1, 3, 4, 5]) : d));
  for (let bar = 0; bar * 4 < beats; bar++) {
    const chord = progression[bar % progression.length] as number;
    if (parts.chords)
      for (const step of [0, 2, 4])
        notes.push({
          tick: bar * 4 * q,
          duration: 4 * q - 10,
          channel: 1,
          key: degree(chord + step) + 12,
          velocity: 60,
        });
    if (parts.bass)
      for (let b = 0; b < 4; b++)
        notes.push({
          tick: (bar * 4 + b) * q,
          duration: q - 20,
          channel: 2,
          key: degree(chord) - 12,
          velocity: 80,
        });
  }
  // The melody: a random walk on the scale in eighths, quarters and halves, with rests.
  let step = 7 + Math.floor(random() * 5);
  for (let tick = 0; tick < beats * q; ) {
    const length = pick([q / 2, q / 2, q, q, q, 2 * q]);
    if (random() > 0.15)
      notes.push({
        tick,
        duration: length - 10,
        channel: 0,
        key: degree(step) + 12,
        velocity: 70 + Math.floor(random() * 40),
      });
    step = Math.max(0, Math.min(16, step + pick([-2, -1, -1, 0, 1, 1, 2])));
    tick += length;
  }
  if (parts.drums)
    for (let b = 0; b < beats * 2; b++) {
      const tick = (b * q) / 2;
      if (b % 4 === 0) notes.push({ tick, duration: q / 4, channel: 9, key: 36, velocity: 100 });
      if (b % 4 === 2) notes.push({ tick, duration: q / 4, channel: 9, key: 38, velocity: 90 });
      notes.push({ tick, duration: q / 4, channel: 9, key: random() < 0.8 ? 42 : 46, velocity: 60 });
    }
  return midiFile(notes, { 0: pick(MELODIC), 1: pick(PADS), 2: pick(BASSES) }, bpm);
}
