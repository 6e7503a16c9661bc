import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { StatusLine } from '../../src/cli/status-line.js';

function sink(isTTY: boolean) {
  let text = '';
  const w = new Writable({ write: (chunk, _enc, cb) => ((text += String(chunk)), cb()) }) as Writable & { isTTY?: boolean };
  w.isTTY = isTTY;
  return { w, text: () => text };
}

test('on a terminal the status line is redrawn in place and cleared', () => {
  const s = sink(true);
  const line = new StatusLine(s.w);
  line.show('3 paths · 0 records lost');
  line.show('4 paths · 0 records lost');
  line.clear();
  assert.equal(s.text(), '\r\x1b[2K3 paths · 0 records lost\r\x1b[2K4 paths · 0 records lost\r\x1b[2K');
});

test('piped, it writes nothing', () => {
  const s = sink(false);
  const line = new StatusLine(s.w);
  line.show('3 paths');
  line.clear();
  assert.equal(s.text(), '');
});
