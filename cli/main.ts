// The `fedsynth` command line: commander wiring only; every command's logic lives in its module.
import { Command } from 'commander';
import { registerCommands } from './commands/index';

const program = new Command();
program
  .name('fedsynth')
  .description('Federated, differentially private synthetic tabular data for bank consortia')
  .version('0.1.0')
  .showHelpAfterError();

registerCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  console.error(`fedsynth: ${msg}`);
  process.exitCode = 1;
});
