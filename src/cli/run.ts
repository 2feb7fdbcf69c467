// Entry for running the CLI from source (tests, `tsx src/cli/run.ts`); bin/braid.js runs the compiled twin.
import { EXIT, exitFor, main } from './main.js';

// A reader that stopped reading (`braid replay f.mcap | head -1`) ends the command quietly, as SIGPIPE ends a Unix
// tool, instead of a stack trace: nobody is left to read what it would print. A command that still has files to
// finish (`braid replay --events-out`) listens for stdout's errors itself and takes a closed pipe from here.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') {
    if (process.stdout.listenerCount('error') > 1) return;
    process.exit(process.exitCode ?? EXIT.ok);
  }
  console.error(`braid: writing to stdout: ${error.message}`);
  process.exit(EXIT.failure);
});

main(process.argv).catch((error: unknown) => {
  const { code, message } = exitFor(error);
  if (message !== undefined) console.error(message);
  process.exitCode = code;
});
