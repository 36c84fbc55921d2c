import type { Command } from 'commander';
import { writeKeyPair } from '../cache/keys.ts';

export function register(program: Command): void {
  program
    .command('keygen')
    .description('create an ed25519 signing key pair in the format nix-store --generate-binary-cache-key writes')
    .requiredOption('--name <name>', 'key name, e.g. cache.example.org-1')
    .requiredOption('--out <dir>', 'directory for NAME.secret and NAME.public')
    .action(async (o: { name: string; out: string }) => {
      const r = await writeKeyPair(o.name, o.out);
      process.stdout.write(`wrote ${r.secretFile} (keep it secret) and ${r.publicFile}\ntrusted key: ${r.publicKey}\n`);
    });
}
