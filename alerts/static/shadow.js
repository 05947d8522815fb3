// The ops page comparing the live model with the shadow model: refreshed every 5 seconds
// from GET /v1/shadow. Lead names are visitor text: only ever set with textContent.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

function cell(value) {
  const td = document.createElement("td");
  td.textContent = value == null ? "" : String(value);
  return td;
}

function fill(table, rows, columns) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    tr.append(...columns.map((column) => cell(column(row))));
    return tr;
  }));
}

function alertRows(table, rows) {
  fill(table, rows, [
    (r) => (r.ts ? new Date(r.ts).toLocaleString() : ""),
    (r) => r.kind,
    (r) => r.subject,
    (r) => r.grade,
    (r) => r.reason,
  ]);
}

async function refresh() {
  try {
    const answer = await fetch("/v1/shadow", { headers: { authorization: "Bearer " + token } });
    if (!answer.ok) throw new Error((await answer.json()).error || answer.statusText);
    const found = await answer.json();
    $("not-running").hidden = found.shadow_running;
    $("summary").textContent =
      `Last ${found.window_hours} h: the live model raised ${found.live_alerts} alerts, ` +
      `the shadow ${found.shadow_alerts}; ${found.leads_compared} of the hottest leads compared.`;
    $("grades-count").textContent = `(${found.grades_differ_count})`;
    $("live-count").textContent = `(${found.only_live_count})`;
    $("shadow-count").textContent = `(${found.only_shadow_count})`;
    fill("grades", found.grades_differ, [
      (r) => r.person,
      (r) => r.live,
      (r) => r.shadow,
      (r) => r.live_engagement,
      (r) => r.shadow_engagement,
    ]);
    alertRows("only-live", found.only_live);
    alertRows("only-shadow", found.only_shadow);
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    $("status").className = "status live";
  } catch (error) {
    $("status").textContent = "not updated: " + error.message;
    $("status").className = "status";
  }
}

refresh();
setInterval(refresh, 5000);
