import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('env')
    .description('env')
    .action(() => {
      throw new UserError('env is not available in this build yet');
    });
}
