import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('keygen')
    .description('create an ed25519 signing key pair in the format nix-store --generate-binary-cache-key writes')
    .requiredOption('--name <name>', 'key name, e.g. cache.example.org-1: letters, digits, dots, dashes and underscores')
    .requiredOption('--out <dir>', 'directory for NAME.secret (mode 0600) and NAME.public; made (mode 0700) when missing')
    .option('--force', 'replace an existing NAME.secret or NAME.public (the old secret key is gone for good)')
    .action(async (o: { name: string; out: string; force?: boolean }) => {
      const { writeKeyPair } = await import('../cache/key-files.ts');
      const r = await writeKeyPair(o.name, o.out, { force: o.force });
      process.stdout.write(`wrote ${r.secretFile} (keep it secret) and ${r.publicFile}\ntrusted key: ${r.publicKey}\n`);
    });
}
