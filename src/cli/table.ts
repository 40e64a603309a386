/** Tables for list commands: aligned columns, and on a terminal cut to its width. */
import { padEnd, padStart, truncate, visibleWidth, type Style } from './format.ts';

export interface Column {
  header: string;
  align?: 'left' | 'right';
  /** May be narrowed (its cells cut with `…`) when the table is wider than the terminal. */
  flex?: boolean;
  /** Colours a cell (after it was cut to width). */
  color?: (text: string) => string;
}

const GAP = '  ';
const MIN_FLEX = 8;

/**
 * Renders rows of plain cells under bold headers. With `maxWidth` (a terminal's columns) the
 * widest flexible columns are narrowed until the table fits.
 */
export function renderTable(columns: Column[], rows: string[][], options: { style: Style; maxWidth?: number | undefined }): string {
  const widths = columns.map((column, i) => Math.max(visibleWidth(column.header), ...rows.map((row) => visibleWidth(row[i] ?? ''))));
  if (options.maxWidth) {
    const total = () => widths.reduce((sum, w) => sum + w, 0) + GAP.length * (columns.length - 1);
    while (total() > options.maxWidth) {
      let widest = -1;
      columns.forEach((column, i) => {
        if (column.flex && widths[i]! > MIN_FLEX && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
      });
      if (widest < 0) break;
      widths[widest] = Math.max(MIN_FLEX, widths[widest]! - (total() - options.maxWidth));
    }
  }
  const line = (cells: string[], header: boolean) =>
    columns
      .map((column, i) => {
        const width = widths[i]!;
        const text = truncate(cells[i] ?? '', width);
        const color = header ? options.style.bold : column.color;
        const colored = color && text ? color(text) : text;
        return column.align === 'right' ? padStart(colored, width) : padEnd(colored, width);
      })
      .join(GAP)
      .trimEnd();
  return [line(columns.map((c) => c.header), true), ...rows.map((row) => line(row, false))].join('\n') + '\n';
}
