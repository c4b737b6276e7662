import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateIdentity, publicIdentity, saveIdentity } from '../../protocol';

export function register(program: Command): void {
  program
    .command('keygen')
    .description("create a bank's (or the coordinator's) Ed25519 signing and X25519 key-agreement key pairs")
    .requiredOption('--out <file>', 'secret key file to create (mode 0600; never share it)')
    .option('--id <id>', 'bank id (or "coordinator") the keys belong to')
    .option('--force', 'replace an existing key file (locks the old identity out of the consortium)')
    .addHelpText('after', '\nPrints the public identity as JSON: give it to the consortium operator for the allow-list.')
    .action((o: { out: string; id?: string; force?: boolean }) => {
      // A new folder for the secret key is private too (the agent creates its state dir 0700).
      mkdirSync(dirname(o.out), { recursive: true, mode: 0o700 });
      const identity = generateIdentity(o.id);
      saveIdentity(o.out, identity, { overwrite: Boolean(o.force) });
      process.stderr.write(`secret keys written to ${o.out} (mode 0600)\n`);
      process.stdout.write(JSON.stringify(publicIdentity(identity), null, 2) + '\n');
    });
}
