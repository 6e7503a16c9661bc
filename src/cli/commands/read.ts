// `vxtrace read F.pcapng [--json]`: replay a trace offline, without root or the cluster: the
// HopEvents and the cluster snapshot stored in the file -> the same paths and the same findings the
// live run reported. Thin: read (src/pcapng/reader) -> replay (src/pcapng/replay) -> text or NDJSON.
import type { Command } from 'commander';
import type { CliContext, RegisterCommand } from '../command.js';
import { judgePaths } from '../verdict.js';
import { readTrace, rotatedTraceFiles } from '../../pcapng/reader.js';
import { replayTrace } from '../../session/replay.js';
import { findingRecord, flowRecord, ndjsonLine, pathRecord, summaryRecord } from '../../output/ndjson.js';
import { formatFinding, formatFlowTable, formatPathLine, formatSummary, summarize, type TextStyle } from '../../output/text.js';

interface ReadOptions {
  json?: boolean;
  rotated?: boolean;
}

async function read(file: string, o: ReadOptions, ctx: CliContext): Promise<void> {
  const files = o.rotated === false ? [file] : await rotatedTraceFiles(file);
  const trace = await readTrace(files);
  const replay = replayTrace(trace, file);
  const style: TextStyle = { color: !!ctx.stdout.isTTY && !process.env.NO_COLOR };

  const section = trace.sections[0];
  const writtenBy = section?.userApplication ? `written by ${section.userApplication}` : 'not written by vxtrace';
  const from = trace.files.length > 1 ? `${trace.files.length} files (${trace.files.join(', ')})` : trace.files[0] ?? file;
  ctx.stderr.write(
    `trace: ${from}, ${writtenBy}; ${trace.hops.length} hop${trace.hops.length === 1 ? '' : 's'}` +
      `${trace.packets.length > trace.hops.length ? ` (and ${trace.packets.length - trace.hops.length} packets without a vxtrace hop record)` : ''}` +
      `${trace.snapshot ? `, cluster snapshot of ${trace.snapshot.takenAt}` : ''}\n`,
  );
  for (const w of [...trace.warnings, ...replay.warnings]) ctx.stderr.write(`warning: ${w}\n`);

  for (const p of replay.paths) ctx.stdout.write(o.json ? ndjsonLine(pathRecord(p)) : formatPathLine(p, style) + '\n');
  const findings = replay.findings ?? replay.recordedFindings ?? [];
  if (!replay.findings && replay.recordedFindings) ctx.stderr.write('showing the findings recorded in the file (they cannot be diagnosed again without its snapshot)\n');
  for (const f of findings) ctx.stdout.write(o.json ? ndjsonLine(findingRecord(f)) : `\n${formatFinding(f, style)}`);

  if (replay.findings && replay.recordedFindings) {
    const codes = (fs: { code: string }[]) => [...new Set(fs.map((f) => f.code))].sort().join(', ') || 'none';
    const now = codes(replay.findings);
    const then = codes(replay.recordedFindings);
    if (now !== then) ctx.stderr.write(`note: the live run recorded findings ${then}; replaying the file finds ${now}\n`);
  }

  const lost = trace.lostRecords ?? 0;
  const s = summarize(replay.paths, lost, findings, { sampledRecords: trace.sampledRecords });
  if (o.json) ctx.stdout.write(replay.flows.map((f) => ndjsonLine(flowRecord(f))).join('') + ndjsonLine(summaryRecord(s)));
  else ctx.stdout.write(`\n${formatFlowTable(replay.flows, style)}${formatSummary(s, style)}`);
  if (trace.lostRecords === undefined && trace.traceId !== undefined) {
    ctx.stderr.write(
      `note: the trace does not record how many datapath records were lost${trace.findings === undefined ? ' (its writer stopped before writing its findings, or a later file of a rotated trace holds them)' : ''}: "0 records lost" above only counts what the file says\n`,
    );
  }
  const verdict = judgePaths(replay.paths, findings, { damaged: trace.damaged, lostRecords: trace.lostRecords, sampledRecords: trace.sampledRecords });
  if (verdict.note) ctx.stderr.write(`note: ${verdict.note}\n`);
  ctx.setExitStatus(verdict.status);
}

export const registerRead: RegisterCommand = (program: Command, ctx: CliContext) => {
  program
    .command('read')
    .description('replay a pcapng trace written by vxtrace: the same paths and findings, offline, without root')
    .argument('<file>', 'a trace written with --write (docs/trace-format.md); its rotated files trace.1.pcapng, ... are read too (given trace.6.pcapng: it and the later ones)')
    .option('--json', 'NDJSON: one object per path, per finding, and a summary (docs/ndjson.md)')
    .option('--no-rotated', 'read only FILE, not the rotated files beside it')
    .addHelpText('after', `
The file holds every hop of every packet, the cluster snapshot (nodes, pods, each node's VXLAN,
FDB and neighbour state) and the findings of the live run; read rebuilds the paths with the same
correlator and diagnoses them again from the snapshot. A damaged or cut-short file is read up to
the damage, with a warning. Wireshark opens the same file: tshark -r FILE -d udp.port==8472,vxlan

Exit status: 0 every packet from or to a pod delivered and no error finding; 1 an error finding,
an undelivered packet (PACKET_LOSS too, whatever its severity), a damaged file, or no pod traffic in it at all (said on stderr); 2 usage
(missing file, not a pcapng trace).`)
    .action(async (file: string, o: ReadOptions) => read(file, o, ctx));
};
