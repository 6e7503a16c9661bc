// `vxtrace demo`: placeholder until its issue lands (see issues). Replaced, not extended.
import type { RegisterCommand } from '../command.js';
import { EnvironmentError } from '../../errors.js';

export const registerDemo: RegisterCommand = (program) => {
  program
    .command('demo')
    .description('(not built yet)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new EnvironmentError('`vxtrace demo` is not built yet');
    });
};
