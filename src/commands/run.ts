import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('run')
    .description('run')
    .action(() => {
      throw new UserError('run is not available in this build yet');
    });
}
