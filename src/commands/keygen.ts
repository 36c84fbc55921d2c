import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('keygen')
    .description('create an ed25519 signing key pair in the format nix-store --generate-binary-cache-key writes')
    .requiredOption('--name NAME', 'key name, e.g. cache.example.org-1')
    .requiredOption('--out DIR', 'directory for NAME.secret and NAME.public')
    .action(() => {
      throw new UserError('keygen is not available in this build yet');
    });
}
