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

export function showRoute(elements, route) {
  elements.key.textContent = route.key;
  elements.rule.textContent = route.rule === "reload"
    ? "reload URL (the domain in the path)"
    : "host (the request's Host)";
  elements.backend.textContent = route.backend ? route.backend.address : "none: no active backend";
  elements.candidates.replaceChildren(
    ...route.candidates.map((c) => {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = c.address;
      li.append(code);
      if (c.weight !== 1) li.append(` (weight ${c.weight})`);
      return li;
    }),
  );
  elements.result.hidden = false;
}
