// `vxtrace read`: placeholder until its issue lands (see issues). Replaced, not extended.
import type { RegisterCommand } from '../command.js';
import { EnvironmentError } from '../../errors.js';

export const registerRead: RegisterCommand = (program) => {
  program
    .command('read')
    .description('(not built yet)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new EnvironmentError('`vxtrace read` is not built yet');
    });
};
