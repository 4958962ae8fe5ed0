'use strict';
// Size limits written like the `bytes` package reads them (what body-parser uses for
// `requestDataLimit`): a number of bytes, or "10mb", "512 kb", "1.5gb", "100b", "2048".

const UNITS = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4, pb: 1024 ** 5 };
const WITH_UNIT = /^((-|\+)?(\d+(?:\.\d+)?)) *(kb|mb|gb|tb|pb)$/i;

/** Bytes for `value`, or null when it is not a size. */
function parseLimit(value) {
  if (typeof value === 'number') return Number.isNaN(value) ? null : value;
  if (typeof value !== 'string') return null;
  const m = WITH_UNIT.exec(value);
  const amount = m ? Number.parseFloat(m[1]) : Number.parseInt(value, 10);
  if (Number.isNaN(amount)) return null;
  return Math.floor(UNITS[m ? m[4].toLowerCase() : 'b'] * amount);
}

/** Like parseLimit, but throws body-parser's error for an invalid limit. */
function requireLimit(value) {
  const limit = parseLimit(value === undefined || value === null ? '100kb' : value);
  if (limit === null) throw new TypeError(`option limit "${String(value)}" is invalid (requestDataLimit)`);
  return limit;
}

module.exports = { parseLimit, requireLimit };
