import type { Command } from 'commander';
import { UserError } from '../util/errors.ts';

export function register(program: Command): void {
  program
    .command('publish')
    .description('publish')
    .action(() => {
      throw new UserError('publish is not available in this build yet');
    });
}
