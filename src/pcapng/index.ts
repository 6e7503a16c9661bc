// vxtrace trace files (pcapng): the writer, the reader and the block codecs. docs/trace-format.md
// describes the format; this module is its only implementation.
export { PcapngWriter, parseSize, rotatedFileName, validateRotation } from './writer.js';
export type { PcapngWriterOptions, WriterStats } from './writer.js';
export type { TraceSnapshot, CustomBlockJson } from './format.js';
export { readTrace, parseTrace, rotatedTraceFiles, TraceBuilder, scaleToNs } from './reader.js';
export type { Trace, TracePacket, TraceInterface, TraceSection, ReadOptions } from './reader.js';
export { PcapngParser, parseBlocks } from './parser.js';
export type { ParserOptions } from './parser.js';
export * from './blocks.js';
export { TraceFormatError, VXTRACE_PEN, TRACE_FORMAT_VERSION, BlockType, LINKTYPE_ETHERNET, LINKTYPE_RAW } from './format.js';
export { frameStartsAtIp, hopComment, encodeHopRecord, decodeHopRecord, HopRecordError, HOP_RECORD_LAYOUT, interfaceNameOf, DROP_INTERFACE } from './hop-record.js';
export type { HopAnnotation, HopOutcome } from './hop-record.js';
