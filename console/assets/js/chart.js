// A small step chart in inline SVG (no library): the value holds until the next point,
// which is how a balance moves. Text lives in HTML around the SVG so it stays readable at
// any width, and a visually hidden table gives screen readers the same points.

import { h } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 800;
const HEIGHT = 200;
const PAD = 6;

function svg(tag, attributes = {}) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/**
 * points: [{x: ms, y: number, label: text for the table, value: formatted y}], in x order.
 * `summary` is the chart's accessible name; `columns` the hidden table's headers.
 */
export function stepChart({ points, summary, columns, caption }) {
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const yMax = Math.max(1, ...ys);
  // Equal spacing when every point has the same time (all in one instant).
  const sx = (p, i) => PAD + (WIDTH - 2 * PAD) * (x1 > x0 ? (p.x - x0) / (x1 - x0) : i / Math.max(1, points.length - 1));
  const sy = (y) => HEIGHT - PAD - (HEIGHT - 2 * PAD) * (y / yMax);

  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': summary, class: 'chart' });
  chart.append(
    svg('line', { x1: PAD, y1: sy(0), x2: WIDTH - PAD, y2: sy(0), class: 'axis' }),
    svg('line', { x1: PAD, y1: sy(yMax), x2: WIDTH - PAD, y2: sy(yMax), class: 'grid' }));
  let d = '';
  points.forEach((p, i) => {
    d += i === 0 ? `M${sx(p, i)},${sy(p.y)}` : `H${sx(p, i)}V${sy(p.y)}`;
  });
  chart.append(svg('path', { d, class: 'line' }));
  points.forEach((p, i) => chart.append(svg('circle', { cx: sx(p, i), cy: sy(p.y), r: 3, class: 'dot' })));

  return h('figure', { class: 'chart-figure' },
    h('div', { class: 'chart-scale' }, h('span', {}, points.find((p) => p.y === yMax)?.value ?? ''), h('span', {}, caption.zero)),
    chart,
    h('figcaption', {}, caption.text),
    h('table', { class: 'visually-hidden' },
      h('caption', {}, summary),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, points.map((p) => h('tr', {}, p.label.map((cell) => h('td', {}, cell)))))));
}
