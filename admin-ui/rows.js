// Table rows the cards share: a cell named for narrow windows, and the
// note row under a row that says why an action on it failed.

/// A cell appended to `tr`; `data-label` names it when a narrow window
/// stacks the table.
export function addCell(tr, label, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) td.className = className;
  tr.append(td);
  return td;
}

/// A row spanning `columns` that announces `message` (empty: filled later).
export function noteRow(columns, message = "") {
  const tr = document.createElement("tr");
  tr.className = "note";
  const td = document.createElement("td");
  td.colSpan = columns;
  td.setAttribute("role", "alert");
  td.textContent = message;
  tr.append(td);
  return tr;
}
