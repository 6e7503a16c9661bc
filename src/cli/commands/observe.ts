// `vxtrace observe --hub URL`: what the hub sees, as `follow` prints it (the same text and NDJSON),
// narrowed by pods, node, finding codes or outcomes. Thin: parse flags -> Subscribe -> streamFromHub.
import type { Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { ExitStatus } from '../../errors.js';
import { FINDING_CODES } from '../../diagnose/finding.js';
import { PATH_OUTCOMES, type Subscription } from '../../wire/codec.js';
import { parseDurationOption, parseIntOption } from '../options.js';
import { nodesLine, streamFromHub } from '../hub-run.js';
import { failing, judgePaths } from '../verdict.js';

interface ObserveOptions {
  hub: string;
  from?: string;
  to?: string;
  pod?: string;
  node?: string;
  code: string[];
  outcome: string[];
  json?: boolean;
  count?: number;
  duration?: number;
  tokenFile?: string;
}

const list = (v: string, prev: string[]) => [...prev, ...v.split(',').map((x) => x.trim()).filter(Boolean)];

export const registerObserve: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('observe')
    .description('print the paths and findings a hub joins from its agents, as follow prints them')
    .requiredOption('--hub <url>', 'the hub: ws://HOST:PORT, http://HOST:PORT or unix:/path.sock')
    .option('--from <pod>', 'paths from this pod (with --to: from it to that pod)')
    .option('--to <pod>', 'paths to this pod')
    .option('--pod <pod>', 'paths from or to this pod')
    .option('--node <node>', 'paths through this node; findings on it')
    .option('--code <code>', `findings with this code (repeatable, or comma-separated): ${FINDING_CODES.join(', ')}`, list, [])
    .option('--outcome <outcome>', `paths with this outcome (repeatable): ${PATH_OUTCOMES.join(', ')}`, list, [])
    .option('--json', 'NDJSON, exactly as follow --json prints it (docs/ndjson.md)')
    .option('--count <n>', 'stop after N paths', (v) => parseIntOption('--count', v, 1))
    .option('--duration <s>', 'stop after this long (10, 10s, 500ms, 2m)', (v) => parseDurationOption('--duration', v))
    .option('--token-file <file>', "the hub's token (first line), sent as Authorization: Bearer")
    .addHelpText('after', `
Pods are name or namespace/name, resolved by the hub. Filters combine (AND); --code narrows findings
only. Findings known when it starts come first (from state, e.g. DUPLICATE_PUBLIC_IP, before any
packet), then paths and findings as they happen; nodes whose agent connects or goes silent
(unwatched) and lost records are said on stderr. Ends with a summary like follow's, after the
kernel's per-hop counters of every flow seen (the table; with --json a flow record is printed each
time a flow's counters change, at most once a second, the last one current).

Exit status: 0 every path from or to a pod delivered and no error finding (or nothing seen); 1 an
error finding or an undelivered packet (PACKET_LOSS too, whatever its severity); 2 usage (unknown pod or code, the hub refused the token);
3 environment (the hub cannot be reached, or went away).`)
    .action(async (o: ObserveOptions) => {
      const subscription: Subscription = { client: 'observe' };
      if (o.from) subscription.from = o.from;
      if (o.to) subscription.to = o.to;
      if (o.pod) subscription.pod = o.pod;
      if (o.node) subscription.node = o.node;
      if (o.code.length) subscription.codes = o.code;
      if (o.outcome.length) subscription.outcomes = o.outcome;
      const r = await streamFromHub({ hub: o.hub, tokenFile: o.tokenFile, subscription, json: o.json, count: o.count, duration: o.duration, flows: o.json ? 'stream' : 'end', readyLine: (s) => `observing the hub at ${o.hub} (${s.clusterFrom}; ${nodesLine(s)})\n` }, ctx);
      if (r.error) return ctx.setExitStatus(r.error.exitStatus);
      const verdict = r.paths.length ? judgePaths(r.paths, r.findings, { lostRecords: r.lostRecords, subject: 'the stream' }) : { status: failing(r.findings) ? ExitStatus.FINDINGS : ExitStatus.OK };
      ctx.setExitStatus(verdict.status);
    });
};
