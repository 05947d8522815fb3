// The rep's live page: alerts over server-sent events (resumed by the browser with
// Last-Event-ID after a drop), and the "hot now" list refreshed every 10 seconds.
// Everything shown is visitor-influenced text: it is only ever set with textContent.
"use strict";

const rep = decodeURIComponent(location.pathname.split("/").pop());
const token = new URLSearchParams(location.search).get("token") || "";
const auth = "token=" + encodeURIComponent(token);
const $ = (id) => document.getElementById(id);

function text(element, value) {
  element.textContent = value == null ? "" : String(value);
  return element;
}

function item(tag, value) {
  return text(document.createElement(tag), value);
}

function when(ms) {
  return new Date(ms).toLocaleString();
}

function renderAlert(alert, fresh) {
  const card = $("alert-card").content.firstElementChild.cloneNode(true);
  const profile = alert.profile || {};
  card.classList.add(alert.kind);
  if (fresh) card.classList.add("new");
  card.dataset.alertId = alert.id;
  text(card.querySelector(".kind"), alert.kind.replace("_", " "));
  const company = profile.company || alert.account;
  if (alert.contact === null) {
    // An account alert: the account and its engaged contacts, no one person's grade.
    text(card.querySelector(".who"), alert.account);
    text(card.querySelector(".grade"), "account");
    text(card.querySelector(".scores"), "account engagement " + alert.engagement);
    for (const contact of profile.contacts || []) {
      const title = contact.title ? ", " + contact.title : "";
      card.querySelector(".signals").append(item("li", (contact.name || contact.person) + title + " — " + contact.grade));
    }
  } else {
    text(card.querySelector(".who"), (profile.name || alert.contact) + (company ? " · " + company : ""));
    text(card.querySelector(".grade"), alert.grade);
    const chance = alert.probability == null ? "" : " · " + (profile.probability_of || "outcome") + ": " + Math.round(alert.probability * 100) + " %";
    text(card.querySelector(".scores"), "fit " + alert.fit + " · engagement " + alert.engagement + chance + (alert.late ? " · late" : ""));
  }
  text(card.querySelector("time"), when(alert.ts));
  text(card.querySelector(".reason"), alert.reason);
  const identity = alert.identity || {};
  if (identity.verified === false) {
    const how = String(identity.recognized_by || "browser").replace("_", " ");
    text(card.querySelector(".identity"), "Unverified claim (" + how + "): the person may not be who they say").hidden = false;
  }
  for (const [label, value] of profile.top_signals || []) card.querySelector(".signals").append(item("li", label + ": " + value));
  for (const [label, points] of profile.fit_reasons || []) card.querySelector(".fit").append(item("li", label + " (" + points + ")"));
  for (const [ts, what] of profile.activity || []) card.querySelector(".activity").append(item("li", when(ts) + " — " + what));
  $("alerts").prepend(card);
  $("alerts-empty").hidden = true;
}

async function refreshHot() {
  const response = await fetch("/v1/reps/" + encodeURIComponent(rep) + "/hot?" + auth, { cache: "no-store" });
  if (!response.ok) return;
  const hot = await response.json();
  text($("rep-name"), "— " + hot.name);
  const list = $("hot");
  list.replaceChildren(...hot.leads.map((lead) =>
    item("li", (lead.name || lead.person) + (lead.company ? " (" + lead.company + ")" : "") + " — " + lead.grade + ", " + lead.engagement)));
  $("hot-empty").hidden = hot.leads.length > 0;
}

function connect() {
  const events = new EventSource("/v1/reps/" + encodeURIComponent(rep) + "/events?" + auth);
  let replaying = true;
  setTimeout(() => { replaying = false; }, 1000);
  events.addEventListener("open", () => { text($("status"), "live").className = "status live"; });
  events.addEventListener("error", () => { text($("status"), "reconnecting…").className = "status"; });
  events.addEventListener("alert", (event) => {
    if (document.querySelector('[data-alert-id="' + CSS.escape(JSON.parse(event.data).id) + '"]')) return;
    renderAlert(JSON.parse(event.data), !replaying);
    refreshHot();
  });
}

refreshHot();
setInterval(refreshHot, 10000);
connect();
