import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('bootstrap')
    .description('bootstrap')
    .action(() => {
      throw new UserError('bootstrap is not available in this build yet');
    });
}
