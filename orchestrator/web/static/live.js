// Live tables: every table with data-live polls that JSON endpoint (views.campaign_rows) and rewrites its cells
// by column key; text only (textContent), so nothing from the database is ever parsed as HTML. When the set of
// campaigns changes (one was added), the page reloads to show it.
"use strict";
(function () {
  for (const table of document.querySelectorAll("table[data-live]")) {
    const url = table.dataset.live;
    const every = Math.max(Number(table.dataset.refresh) || 5, 0.5) * 1000;
    const known = () => Array.from(table.querySelectorAll("tbody tr[data-name]"), (tr) => tr.dataset.name);
    async function poll() {
      try {
        const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
        if (!response.ok) return;
        const data = await response.json();
        const names = data.campaigns.map((c) => c.name);
        const shown = known();
        if (table.id === "campaigns" && names.join("\u0000") !== shown.join("\u0000")) {
          window.location.reload();
          return;
        }
        for (const row of data.campaigns) {
          const tr = Array.from(table.querySelectorAll("tbody tr[data-name]")).find((t) => t.dataset.name === row.name);
          if (!tr) continue;
          for (const key of data.columns) {
            const td = tr.querySelector(`td[data-col="${key}"]`);
            if (td && td.textContent !== row[key]) {
              td.textContent = row[key];
              td.classList.add("changed");
              setTimeout(() => td.classList.remove("changed"), 800);
            }
          }
        }
        table.dataset.updated = String(Date.now());
      } catch (e) {
        // the server may be restarting: try again at the next tick
      } finally {
        setTimeout(poll, every);
      }
    }
    setTimeout(poll, every);
  }
})();
