// `vxtrace diagnose [--cluster FILE] [--lab NAME] [--json] [--watch]`: every node's kernel VXLAN state
// against the cluster state, no traffic needed; with `--hub URL`, the same from the hub's cluster and
// its agents' kernel state. Exit 0 when clean (warnings allowed), 1 when a finding of severity error
// exists.
import type { Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus, UsageError } from '../../errors.js';
import { loadCluster } from '../../cluster/source.js';
import { ModelWatcher } from '../../cluster/model-watch.js';
import { readKernelStates } from '../../cluster/kernel-reader.js';
import { ClusterModel } from '../../cluster/model.js';
import { diagnoseModel, hasErrors, type Diagnosis } from '../../diagnose/diagnosis.js';
import { formatDiagnosis, formatDiagnosisChange } from '../../output/diagnosis.js';
import { diagnoseThroughHub } from '../hub-run.js';

interface DiagnoseOptions {
  cluster?: string;
  kubeconfig?: string;
  lab?: string;
  json?: boolean;
  watch?: boolean;
  hub?: string;
  tokenFile?: string;
}

/** Nodes whose kernel state this machine cannot read are other machines. */
const NOT_HERE = () => 'not on this machine';
const NOWHERE_LOCAL = 'no kernel state readable here';

const statusOf = (d: Diagnosis) => (hasErrors(d) ? ExitStatus.FINDINGS : ExitStatus.OK);

export const registerDiagnose: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('diagnose')
    .description("compare every node's VXLAN kernel state (routes, neighbours, FDB, VNI, port, MTU) with the cluster state; no traffic needed")
    .option('--cluster <file>', 'cluster state: the output of `kubectl get nodes,pods -A -o json` (default: the cluster of KUBECONFIG or ~/.kube/config, else the running lab)')
    .option('--kubeconfig <file>', 'read the cluster from the Kubernetes API with this kubeconfig')
    .option('--lab <name>', 'use the cluster file of this lab (default: the lab named `lab`, or the only lab that is up)')
    .option('--json', 'print findings as NDJSON, one object per line (docs/findings.md), ending with a summary record (docs/ndjson.md)')
    .option('--watch', "keep watching every node's kernel state and the cluster state; print the findings again when they change (Ctrl-C to stop)")
    .option('--hub <url>', "the whole cluster as a hub knows it (every connected agent's kernel state): ws://HOST:PORT, http://HOST:PORT or unix:/path.sock")
    .option('--token-file <file>', "with --hub: the hub's token (first line), sent as Authorization: Bearer")
    .addHelpText('after', `
Findings name the node to fix, what was observed and expected, one sentence of cause and the fix.
Codes: docs/findings.md. Without --hub, the kernel state is read on this machine (every lab node;
on a real cluster, the node it runs on). With --hub, the hub diagnoses its cluster with the kernel
state its agents reported (nodes without a connected agent: from the cluster objects only) and
prints the same; no agent's in-kernel filter changes for it (nothing is traced).

Exit status: 0 no finding of severity error, 1 at least one, 2 usage error (with --hub: the hub
refused the token), 3 environment (missing capabilities, lab not up; the hub cannot be reached or
went away).`)
    .action(async (opts: DiagnoseOptions) => {
      const style = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };
      if (opts.hub !== undefined) {
        const local = (['cluster', 'kubeconfig', 'lab'] as const).filter((k) => opts[k] !== undefined);
        if (local.length) throw new UsageError(`--${local[0]} does not go with --hub: the hub reads the cluster (give it --${local[0]} instead)`);
        return ctx.setExitStatus(await diagnoseThroughHub({ hub: opts.hub, tokenFile: opts.tokenFile, json: !!opts.json, watch: !!opts.watch }, ctx));
      }
      if (opts.tokenFile !== undefined) throw new UsageError('--token-file is the token of a hub: it goes with --hub URL (without --hub, diagnose reads the state here)');
      const { objects, from } = await loadCluster(opts);
      const kernel = await readKernelStates(objects);
      let model = ClusterModel.build(objects, kernel);
      let diagnosis = diagnoseModel(model, from, NOT_HERE);
      ctx.stdout.write(formatDiagnosis(diagnosis, { json: !!opts.json, style, nowhere: NOWHERE_LOCAL }));
      ctx.setExitStatus(statusOf(diagnosis));
      if (!opts.watch) return;

      // --watch: re-diagnose whenever the kernel or cluster state settles after a change; print
      // when the findings change.
      let last = JSON.stringify(diagnosis.findings.map((f) => f.key));
      const watcher = new ModelWatcher(model, opts);
      watcher.on('error', (err) => ctx.stderr.write(`vxtrace: ${err.message}\n`));
      watcher.on('change', (next, why) => {
        model = next;
        diagnosis = diagnoseModel(model, from, NOT_HERE);
        const keys = JSON.stringify(diagnosis.findings.map((f) => f.key));
        if (keys === last) return;
        last = keys;
        ctx.stdout.write(formatDiagnosisChange(diagnosis, { json: !!opts.json, style, why, timeMs: Date.now() }));
        ctx.setExitStatus(statusOf(diagnosis));
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
