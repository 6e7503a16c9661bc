// `vxtrace diagnose [--cluster FILE] [--lab NAME] [--json] [--watch]`: every node's kernel VXLAN state
// against the cluster state, no traffic needed. Exit 0 when clean (warnings allowed), 1 when a finding
// of severity error exists.
import type { Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus } from '../../errors.js';
import { loadCluster } from '../../cluster/source.js';
import { ModelWatcher } from '../../cluster/model-watch.js';
import { readKernelStates } from '../../cluster/kernel-reader.js';
import { ClusterModel } from '../../cluster/model.js';
import { diagnoseState } from '../../diagnose/state.js';
import type { Finding } from '../../diagnose/finding.js';
import { findingRecord, ndjsonLine } from '../../output/ndjson.js';
import { formatFinding } from '../../output/text.js';

interface DiagnoseOptions {
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  json?: boolean;
  watch?: boolean;
}

function header(model: ClusterModel, from: string): string {
  const withKernel = model.nodes.filter((n) => n.kernel).map((n) => n.name);
  const without = model.nodes.filter((n) => !n.kernel).map((n) => n.name);
  const lines = [`${model.nodes.length} node${model.nodes.length === 1 ? '' : 's'}, ${model.pods.length} pod${model.pods.length === 1 ? '' : 's'} from ${from}`];
  lines.push(withKernel.length ? `kernel state read for ${withKernel.join(', ')}` : 'no kernel state readable here: checking the cluster objects only');
  if (withKernel.length && without.length) lines.push(`no kernel state for ${without.join(', ')} (not on this machine)`);
  for (const n of model.nodes) lines.push(`  ${n.name} underlay ${n.underlay.address ?? '?'}: ${n.underlay.explanation}`);
  return lines.join('\n') + '\n\n';
}

function print(ctx: CliContext, findings: Finding[], json: boolean): void {
  const color = !!ctx.stdout.isTTY && !process.env.NO_COLOR;
  for (const f of findings) ctx.stdout.write(json ? ndjsonLine(findingRecord(f)) : formatFinding(f, { color }) + '\n');
}

const statusOf = (fs: Finding[]) => (fs.some((f) => f.severity === 'error') ? ExitStatus.FINDINGS : ExitStatus.OK);

export const registerDiagnose: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('diagnose')
    .description("compare every node's VXLAN kernel state (routes, neighbours, FDB, VNI, port, MTU) with the cluster state; no traffic needed")
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json` (default: the cluster of KUBECONFIG or ~/.kube/config, else the running lab)')
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster file of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--json', 'print findings as NDJSON, one object per line (docs/findings.md)')
    .option('--watch', "keep watching every node's kernel state and the cluster state; print the findings again when they change (Ctrl-C to stop)")
    .addHelpText('after', `
Findings name the node to fix, what was observed and expected, one sentence of cause and the fix.
Codes: docs/findings.md. Exit status: 0 no finding of severity error, 1 at least one, 2 usage
error, 3 environment (missing capabilities, lab not up).`)
    .action(async (opts: DiagnoseOptions) => {
      const { objects, from } = await loadCluster(opts);
      const kernel = await readKernelStates(objects);
      let model = ClusterModel.build(objects, kernel);
      if (!opts.json) ctx.stdout.write(header(model, from));
      let findings = diagnoseState(model);
      print(ctx, findings, !!opts.json);
      if (!opts.json) ctx.stdout.write(findings.length ? `${findings.length} finding${findings.length === 1 ? '' : 's'}\n` : 'no findings: every node\'s VXLAN state matches the cluster\n');
      ctx.setExitStatus(statusOf(findings));
      if (!opts.watch) return;

      // --watch: re-diagnose whenever the kernel or cluster state settles after a change; print
      // when the findings change.
      let last = JSON.stringify(findings.map((f) => f.key));
      const watcher = new ModelWatcher(model, opts);
      watcher.on('error', (err) => ctx.stderr.write(`vxtrace: ${err.message}\n`));
      watcher.on('change', (next, why) => {
        model = next;
        findings = diagnoseState(model);
        const keys = JSON.stringify(findings.map((f) => f.key));
        if (keys === last) return;
        last = keys;
        if (!opts.json) ctx.stdout.write(`\n${new Date().toISOString()} ${why}: ${findings.length ? `${findings.length} finding${findings.length === 1 ? '' : 's'}` : 'no findings'}\n`);
        print(ctx, findings, !!opts.json);
        ctx.setExitStatus(statusOf(findings));
      });
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          watcher.stop(); // the exit status reflects the state at the end
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        watcher.start().catch((err) => {
          stop();
          reject(err);
        });
      });
    });
};
