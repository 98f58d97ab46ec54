// A small SVG chart of the server's five-minute history (no axes; the peak
// is in the label): requests/s, and errors/s in red when there are any.

import { formatRate } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

export function sparkline({ width = 100, height = 26 } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.append(document.createElementNS(SVG, "title"));
  // The whole five minutes as a faint baseline, so that a short history
  // reads as "recent" and an empty chart as "nothing yet", not as broken.
  const axis = document.createElementNS(SVG, "line");
  axis.setAttribute("class", "axis");
  for (const [name, value] of [["x1", 0], ["y1", height - 0.5], ["x2", width], ["y2", height - 0.5]]) {
    axis.setAttribute(name, value);
  }
  svg.append(axis);
  for (const name of ["requests", "errors"]) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", name);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("stroke-linejoin", "round");
    svg.append(line);
  }
  return svg;
}

/// Redraw from `history`: { samples: [{at, requests, errors}] oldest first,
/// interval (seconds), newest (ms, the newest sample of any backend) }.
/// The axis is a fixed `slots` intervals ending at `newest`, so every
/// backend's chart shares one time axis and a short history is a short line
/// at the right. `data-points` says how many server samples are drawn.
export function drawSparkline(svg, label, { samples = [], interval = 5, newest = 0 } = {}, slots = 60) {
  const width = Number(svg.getAttribute("width"));
  const height = Number(svg.getAttribute("height"));
  const perSecond = (count) => count / interval;
  const peak = Math.max(1, ...samples.map((s) => perSecond(s.requests)));
  const step = width / (slots - 1);
  const points = (field) => samples
    .map((s) => {
      const back = Math.round((newest - Date.parse(s.at)) / (interval * 1000));
      const x = width - back * step;
      const y = height - 2 - (perSecond(s[field]) / peak) * (height - 4);
      return x < -0.5 ? null : `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .filter(Boolean)
    .join(" ");
  svg.querySelector(".requests").setAttribute("points", points("requests"));
  const errors = samples.some((s) => s.errors > 0);
  svg.querySelector(".errors").setAttribute("points", errors ? points("errors") : "");
  svg.dataset.points = samples.length;
  const top = Math.max(0, ...samples.map((s) => perSecond(s.requests)));
  const text = samples.length
    ? `${label}, last 5 min: peak ${formatRate(top)} requests/s`
    : `${label}: no history yet (the server samples every ${interval} s)`;
  svg.setAttribute("aria-label", text);
  svg.querySelector("title").textContent = text;
}
