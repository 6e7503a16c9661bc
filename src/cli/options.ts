// Shared parsers for command-line values: errors name the flag and what it takes.
import { UsageError } from '../errors.js';
import { parseSize } from '../pcapng/writer.js';

export function parseIntOption(flag: string, value: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`${flag} takes a whole number, not '${value}'`);
  const n = Number(value);
  if (n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : min === Number.MIN_SAFE_INTEGER ? `at most ${max}` : `${min} to ${max}`;
    throw new UsageError(`${flag} ${value} is out of range (${range})`);
  }
  return n;
}

export function parseDurationOption(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!m) throw new UsageError(`${flag} takes a duration like 10, 10s, 500ms or 2m, not '${value}'`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (ms <= 0) throw new UsageError(`${flag} must be longer than 0`);
  return ms;
}

/** A file size option (--rotate-size 100M). */
export function parseSizeOption(flag: string, value: string): number {
  try {
    return parseSize(value);
  } catch {
    throw new UsageError(`${flag} takes a size like 100M, 1G or 500000, not '${value}'`);
  }
}
