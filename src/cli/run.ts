// Entry for running the CLI from source (tests, `tsx src/cli/run.ts`); bin/braid.js runs the compiled twin.
import { main } from './main.js';

main(process.argv).catch((error: unknown) => {
  console.error(`braid: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
