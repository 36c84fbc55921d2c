import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('status')
    .description('status')
    .action(() => {
      throw new UserError('status is not available in this build yet');
    });
}
