'use strict';
// Plain-text tables: one row per peer, columns side by side, plus ratio rows
// against a reference peer (usually the ceiling).

/**
 * columns: [{ key, title, digits }] (digits: decimals for numbers); rows: objects.
 * Returns the table as a string; numbers are right-aligned, text left-aligned.
 */
function formatTable(columns, rows) {
  const cells = rows.map(row => columns.map(col => formatCell(row[col.key], col.digits)));
  const widths = columns.map((col, i) => Math.max(col.title.length, ...cells.map(r => r[i].length)));
  const numeric = columns.map((col, i) => rows.some(row => typeof row[col.key] === 'number') || i > 0);
  const line = values => values.map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join(' | ');
  return [ line(columns.map(c => c.title)), widths.map(w => '-'.repeat(w)).join('-|-'), ...cells.map(line) ].join('\n');
}

function formatCell(value, digits = 0) {
  if (value === undefined || value === null || Number.isNaN(value)) return '-';
  if (typeof value === 'number') return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return String(value);
}

/** A row of row[key] / reference[key] for each key, shown as "0.42x"; `label` goes in `labelKey`. */
function ratioRow(row, reference, keys, label, labelKey = 'peer') {
  const ratio = { [labelKey]: label };
  for (const key of keys) {
    const a = row[key];
    const b = reference[key];
    ratio[key] = typeof a === 'number' && typeof b === 'number' && b !== 0 ? `${(a / b).toFixed(2)}x` : '-';
  }
  return ratio;
}

/**
 * One row per peer from several rounds' rows (rowsPerRound[round][i] is peer i's
 * row in that round): the median of each numeric value, except the `sumKeys`, which
 * are added up (errors). Text values come from the first round.
 */
function medianRows(rowsPerRound, sumKeys = []) {
  return rowsPerRound[0].map((first, i) => {
    const row = { ...first };
    for (const key of Object.keys(first)) {
      const values = rowsPerRound.map(rows => rows[i][key]).filter(v => typeof v === 'number' && !Number.isNaN(v));
      if (!values.length) continue;
      row[key] = sumKeys.includes(key) ? values.reduce((a, b) => a + b, 0) : median(values);
    }
    return row;
  });
}

function median(values) {
  const sorted = [ ...values ].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

module.exports = { formatTable, ratioRow, medianRows };
