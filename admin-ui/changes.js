// The membership change log, newest first.

const ACTIONS = { created: "Added", updated: "Changed", deleted: "Removed", replaced: "Replaced" };

export function showChanges(list, empty, changes) {
  empty.hidden = changes.length > 0;
  list.replaceChildren(
    ...changes.map((change) => {
      const li = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = change.at;
      time.textContent = new Date(change.at).toLocaleString();
      const action = document.createElement("span");
      action.className = "action";
      action.textContent = ACTIONS[change.action] || change.action;
      const address = document.createElement("code");
      address.textContent = change.address;
      li.append(time, action, address);
      if (change.detail) li.append(` — ${change.detail}`);
      li.append(` (generation ${change.generation})`);
      return li;
    }),
  );
}
