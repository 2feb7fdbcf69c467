// Entry for running the CLI from source (tests, `tsx src/cli/run.ts`); bin/braid.js runs the compiled twin.
import { exitFor, main } from './main.js';

main(process.argv).catch((error: unknown) => {
  const { code, message } = exitFor(error);
  if (message !== undefined) console.error(message);
  process.exitCode = code;
});
