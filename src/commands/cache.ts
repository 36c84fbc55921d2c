import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('cache')
    .description('cache')
    .action(() => {
      throw new UserError('cache is not available in this build yet');
    });
}
