// A small SVG line of recent values (no axes; the peak is in the label).

const SVG = "http://www.w3.org/2000/svg";

export function sparkline(values, { width = 120, height = 26, label = "" } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const title = document.createElementNS(SVG, "title");
  svg.append(title);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "currentColor");
  line.setAttribute("stroke-width", "1.5");
  line.setAttribute("stroke-linejoin", "round");
  svg.append(line);
  drawSparkline(svg, values, label);
  return svg;
}

/// Redraw with `values` (one per second, newest last) on a fixed axis of
/// `slots` seconds: a short history is a short line at the right.
export function drawSparkline(svg, values, label, slots = 300) {
  const width = Number(svg.getAttribute("width"));
  const height = Number(svg.getAttribute("height"));
  const peak = Math.max(1, ...values);
  const step = width / (slots - 1);
  const points = values.map((v, i) => {
    const x = (width - (values.length - 1 - i) * step).toFixed(1);
    const y = (height - 2 - (v / peak) * (height - 4)).toFixed(1);
    return `${x},${y}`;
  });
  svg.querySelector("polyline").setAttribute("points", points.join(" "));
  const text = `${label}: peak ${formatRate(Math.max(0, ...values))} requests/s`;
  svg.setAttribute("aria-label", text);
  svg.querySelector("title").textContent = text;
}

export function formatRate(value) {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
