// Route lookup: a domain, "host/path", or a full URL (including a
// /user/<name>/webapps/<domain>/reload URL) -> the API's answer.

/// Split what was typed into the host and path a request would carry.
export function parseTarget(text) {
  const input = text.trim();
  if (!input) throw new Error("Type a domain or a URL.");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    let url;
    try {
      url = new URL(input);
    } catch {
      throw new Error("That URL cannot be parsed.");
    }
    return { host: url.host, path: url.pathname + url.search };
  }
  const slash = input.indexOf("/");
  if (slash === 0) throw new Error("Give the host too, e.g. example.com/user/fred/webapps/site/reload.");
  if (slash > 0) return { host: input.slice(0, slash), path: input.slice(slash) };
  return { host: input, path: "/" };
}

const badge = (className, text) => {
  const span = document.createElement("span");
  span.className = `badge ${className}`;
  span.textContent = text;
  return span;
};

export function showRoute(elements, route) {
  elements.key.textContent = route.key;
  elements.rule.textContent = route.rule === "reload"
    ? "reload URL (the domain in the path)"
    : "host (the request's Host)";
  const serving = route.backend;
  elements.backend.textContent = serving ? serving.address : "none: no active backend";
  // The server picks the first candidate that is not down; say why when
  // that is not simply the first one, or when every candidate is down.
  const skipped = route.candidates.filter((c) => c.health === "down");
  elements.note.textContent = !serving || skipped.length === 0
    ? ""
    : skipped.length === route.candidates.length
      ? "Every candidate is down: the first is tried anyway."
      : `${skipped.map((c) => c.address).join(", ")} ${skipped.length === 1 ? "is" : "are"} down and skipped.`;
  elements.candidates.replaceChildren(
    ...route.candidates.map((c) => {
      const li = document.createElement("li");
      li.dataset.health = c.health;
      const code = document.createElement("code");
      code.textContent = c.address;
      li.append(code);
      if (c.weight !== 1) li.append(` (weight ${c.weight})`);
      if (serving && c.id === serving.id) {
        li.classList.add("serves");
        li.append(" ", badge("serves", "serves"));
      }
      if (c.health === "down") {
        li.classList.add("down");
        li.append(" ", badge("down", serving && c.id === serving.id ? "down" : "down — skipped"));
      } else if (c.health !== "up") {
        li.append(" ", badge(c.health, c.health));
      }
      return li;
    }),
  );
  elements.result.hidden = false;
}
