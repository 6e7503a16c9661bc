// `vxtrace diagnose [--cluster FILE] [--lab NAME] [--json] [--watch]`: every node's kernel VXLAN state
// against the cluster state, no traffic needed. Exit 0 when clean (warnings allowed), 1 when a finding
// of severity error exists.
import type { Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus } from '../../errors.js';
import { loadCluster } from '../../cluster/source.js';
import { KernelWatcher, kernelSourceOf, readKernelStates, thisMachine } from '../../cluster/kernel-reader.js';
import { ClusterModel } from '../../cluster/model.js';
import { diagnoseState } from '../../diagnose/state.js';
import type { Finding } from '../../diagnose/finding.js';
import { findingRecord, ndjsonLine } from '../../output/ndjson.js';
import { formatFinding } from '../../output/text.js';

interface DiagnoseOptions {
  cluster?: string;
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
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json` (default: the running lab, else the Kubernetes API)')
    .option('--lab <name>', 'use the cluster file of this lab (default: the lab that is up)')
    .option('--json', 'print findings as NDJSON, one object per line (docs/findings.md)')
    .option('--watch', 'keep watching the kernel state and print findings again when they change (Ctrl-C to stop)')
    .addHelpText('after', `
Findings name the node to fix, what was observed and expected, one sentence of cause and the fix.
Codes: docs/findings.md. Exit status: 0 no finding of severity error, 1 at least one, 2 usage
error, 3 environment (not root, lab not up).`)
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

      // --watch: one KernelWatcher per node this machine can see; re-diagnose on every change.
      const self = thisMachine();
      const watchers: KernelWatcher[] = [];
      let last = JSON.stringify(findings.map((f) => f.key));
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          for (const w of watchers) w.stop();
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        for (const node of objects.nodes) {
          const src = kernelSourceOf(node, self);
          if (!src) continue;
          const w = new KernelWatcher({ netns: src.netns });
          watchers.push(w);
          w.on('error', (err: Error) => ctx.stderr.write(`vxtrace: ${err.message}\n`));
          w.on('change', (state) => {
            model = model.withKernelState(node.metadata.name, state);
            findings = diagnoseState(model);
            const keys = JSON.stringify(findings.map((f) => f.key));
            if (keys === last) return;
            last = keys;
            if (!opts.json) ctx.stdout.write(`\n${new Date().toISOString()} ${node.metadata.name}'s kernel state changed: ${findings.length ? `${findings.length} finding${findings.length === 1 ? '' : 's'}` : 'no findings'}\n`);
            print(ctx, findings, !!opts.json);
            ctx.setExitStatus(statusOf(findings));
          });
          w.start().catch((err) => {
            stop();
            reject(err);
          });
        }
        if (!watchers.length) {
          ctx.stderr.write('vxtrace: --watch: no node\'s kernel state is readable on this machine; nothing to watch\n');
          stop();
        }
      });
    });
};
