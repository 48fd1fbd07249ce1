import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMPACT, formatBytes, ONE_DECIMAL } from '../src/format-bytes.ts';

test('formatBytes, compact: bytes as given, one decimal below 100 of a unit, whole units from 100, up to TiB', () => {
  const cases: Array<[number, string]> = [
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [100 * 1024 - 1, '100.0 KiB'],
    [100 * 1024, '100 KiB'],
    [450_560, '440 KiB'],
    [1024 ** 3 * 1.25, '1.3 GiB'],
    [1024 ** 4 * 3, '3.0 TiB'],
    [1024 ** 5, '1024 TiB'],
  ];
  for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, `${bytes}`);
  assert.equal(formatBytes(1536, COMPACT), '1.5 KiB');
});

test('formatBytes, one decimal: one decimal at every size, up to GiB', () => {
  const cases: Array<[number, string]> = [
    [0, '0 B'],
    [512.5, '512.5 B'],
    [1024, '1.0 KiB'],
    [450_560, '440.0 KiB'],
    [1024 ** 2 * 200, '200.0 MiB'],
    [1024 ** 4 * 3, '3072.0 GiB'],
  ];
  for (const [bytes, text] of cases) assert.equal(formatBytes(bytes, ONE_DECIMAL), text, `${bytes}`);
});
