// Runs only the `privacy` command group the way cli/main.ts runs the full CLI, so the CLI tests
// exercise the real commander wiring in a subprocess before the lead registers it in cli/commands/index.ts.
import { Command } from 'commander';
import { register } from '../../../cli/commands/privacy';

const program = new Command().name('fedsynth').showHelpAfterError();
register(program);
program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`fedsynth: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
