// `vxtrace follow`: placeholder until its issue lands (see issues). Replaced, not extended.
import type { RegisterCommand } from '../command.js';
import { EnvironmentError } from '../../errors.js';

export const registerFollow: RegisterCommand = (program) => {
  program
    .command('follow')
    .description('(not built yet)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new EnvironmentError('`vxtrace follow` is not built yet');
    });
};
