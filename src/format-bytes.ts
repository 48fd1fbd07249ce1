/** How a size is written: the largest unit used, and whether one decimal is kept at every size. */
export interface ByteStyle {
  largest: 'GiB' | 'TiB';
  oneDecimal: boolean;
}

/** Reports and incident messages: whole units from 100 up ("440 KiB", "1.2 GiB", "3.1 TiB"). */
export const COMPACT: ByteStyle = { largest: 'TiB', oneDecimal: false };
/** Pulls, deletions and runs: one decimal at every size ("440.0 KiB"), up to GiB. */
export const ONE_DECIMAL: ByteStyle = { largest: 'GiB', oneDecimal: true };

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** A byte count in binary units; bytes themselves are written as given. */
export function formatBytes(bytes: number, style: ByteStyle = COMPACT): string {
  const largest = UNITS.indexOf(style.largest);
  let value = bytes;
  let unit = 0;
  // Division by 1024 is exact in floating point, so dividing in steps equals dividing by 1024 ** unit.
  while (value >= 1024 && unit < largest) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value.toFixed(style.oneDecimal || value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}
