import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('demo')
    .description('demo')
    .action(() => {
      throw new UserError('demo is not available in this build yet');
    });
}
