// `vxtrace diagnose`: placeholder until its issue lands (see issues). Replaced, not extended.
import type { RegisterCommand } from '../command.js';
import { EnvironmentError } from '../../errors.js';

export const registerDiagnose: RegisterCommand = (program) => {
  program
    .command('diagnose')
    .description('(not built yet)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new EnvironmentError('`vxtrace diagnose` is not built yet');
    });
};
