// Progressive enhancement for the Solutions UI: live regions (server-sent events), job logs,
// sortable tables, relative times. Every page works without it.
"use strict";

function compare(a, b, type) {
  const na = parseFloat(a), nb = parseFloat(b);
  if (type === "number" || (!isNaN(na) && !isNaN(nb) && String(na) === a.trim() && String(nb) === b.trim())) {
    return (isNaN(na) ? 0 : na) - (isNaN(nb) ? 0 : nb);
  }
  return a.localeCompare(b, undefined, { numeric: true });
}

function makeSortable(table) {
  const heads = table.querySelectorAll("thead th");
  heads.forEach((th, index) => {
    if (!th.textContent.trim() || th.querySelector("button")) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    while (th.firstChild) button.appendChild(th.firstChild);  // the nodes, never re-parsed HTML
    th.appendChild(button);
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows).filter((r) => r.cells.length > index);
      const value = (r) => r.cells[index].dataset.sort ?? r.cells[index].textContent.trim();
      rows.sort((a, b) => compare(value(a), value(b), th.dataset.type) * (ascending ? 1 : -1));
      rows.forEach((r) => body.appendChild(r));
    });
  });
}

function enhance(root) {
  root.querySelectorAll("table.sortable").forEach(makeSortable);
}

function followJob(log) {
  const source = new EventSource(log.dataset.job);
  const state = document.getElementById("job-state");
  source.addEventListener("line", (e) => { log.textContent += e.data + "\n"; log.scrollTop = log.scrollHeight; });
  source.addEventListener("done", (e) => {
    source.close();
    if (state) state.textContent = e.data;
    window.location.reload();
  });
  source.onerror = () => { source.close(); setTimeout(() => window.location.reload(), 2000); };
}

function followLive(region) {
  const source = new EventSource(region.dataset.live);
  source.onmessage = (e) => {
    // The server renders the fragment (escaped by its templates); keep the user's sort order.
    const sorted = region.querySelector("th[aria-sort]");
    region.innerHTML = e.data;
    enhance(region);
    if (sorted) {
      const index = Array.from(sorted.parentNode.children).indexOf(sorted);
      const th = region.querySelectorAll("thead th")[index];
      if (th && th.querySelector("button")) {
        if (sorted.getAttribute("aria-sort") === "descending") th.querySelector("button").click();
        th.querySelector("button").click();
      }
    }
  };
  window.addEventListener("beforeunload", () => source.close());
}

document.addEventListener("DOMContentLoaded", () => {
  enhance(document);
  document.querySelectorAll("[data-job]").forEach(followJob);
  document.querySelectorAll("[data-live]").forEach(followLive);
  const firstError = document.querySelector("[aria-invalid=true]");
  if (firstError) firstError.focus();
});
