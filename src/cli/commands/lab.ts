// `vxtrace lab up|down|status|exec`: the embedded flannel VXLAN cluster in network namespaces.
import type { RegisterCommand } from '../command.js';
import { EnvironmentError } from '../../errors.js';

export const registerLab: RegisterCommand = (program) => {
  program
    .command('lab')
    .description('(being built)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new EnvironmentError('`vxtrace lab` is not built yet');
    });
};
