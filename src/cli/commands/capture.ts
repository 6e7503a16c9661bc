// `vxtrace capture`: placeholder until its issue lands (see issues). Replaced, not extended.
import type { RegisterCommand } from '../command.js';
import { EnvironmentError } from '../../errors.js';

export const registerCapture: RegisterCommand = (program) => {
  program
    .command('capture')
    .description('(not built yet)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new EnvironmentError('`vxtrace capture` is not built yet');
    });
};
