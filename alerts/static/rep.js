// The rep's live page: alerts over server-sent events (resumed by the browser with
// Last-Event-ID after a drop), who is on the site now (every 2 seconds), and the "hot now"
// list refreshed every 10 seconds. The
// alerts of one lead visit share a thread: one card, updated with each, saying all of it.
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

const seen = new Set();
const threads = new Map();  // thread id -> its alerts' kinds and reasons, oldest first

function renderAlert(alert, fresh) {
  if (seen.has(alert.id)) return;
  seen.add(alert.id);
  const card = $("alert-card").content.firstElementChild.cloneNode(true);
  const said = (alert.thread && threads.get(alert.thread)) || { kinds: [], reasons: [] };
  if (!said.kinds.includes(alert.kind)) said.kinds.push(alert.kind);
  said.reasons.push(alert.reason);
  if (alert.thread) {
    threads.set(alert.thread, said);
    const earlier = document.querySelector('[data-thread="' + CSS.escape(alert.thread) + '"]');
    if (earlier) earlier.remove();
    card.dataset.thread = alert.thread;
    card.dataset.alerts = String(said.reasons.length);
  }
  const profile = alert.profile || {};
  card.classList.add(...said.kinds);
  if (fresh) card.classList.add("new");
  card.dataset.alertId = alert.id;
  text(card.querySelector(".kind"), said.kinds.map((kind) => kind.replace("_", " ")).join(" · "));
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
  const told = said.reasons.map((reason, i) => (i ? reason.charAt(0).toLowerCase() + reason.slice(1) : reason));
  text(card.querySelector(".reason"), told.join(", then "));
  const identity = alert.identity || {};
  if (identity.verified === false) {
    const how = String(identity.recognized_by || "browser").replace("_", " ");
    text(card.querySelector(".identity"), "Unverified claim (" + how + "): the person may not be who they say").hidden = false;
  }
  addFeedback(card, alert);
  for (const [label, value] of profile.top_signals || []) card.querySelector(".signals").append(item("li", label + ": " + value));
  for (const [label, points] of profile.fit_reasons || []) card.querySelector(".fit").append(item("li", label + " (" + points + ")"));
  for (const [ts, what] of profile.activity || []) card.querySelector(".activity").append(item("li", when(ts) + " — " + what));
  $("alerts").prepend(card);
  $("alerts-empty").hidden = true;
}

// What a rep can say of an alert: it goes to the events log; a snooze holds the lead's (or
// account's) alerts for 7 days at once.
const FEEDBACK = [
  ["useful", "lead", "Useful"], ["not_useful", "lead", "Not useful"],
  ["already_working", "lead", "Already working it"], ["snooze", "lead", "Snooze lead 7 d"],
  ["snooze", "account", "Snooze account 7 d"],
];

function addFeedback(card, alert) {
  const group = card.querySelector(".feedback");
  for (const [action, scope, label] of FEEDBACK) {
    if (scope === "lead" && action === "snooze" && alert.contact === null) continue;
    if (scope === "account" && !alert.account) continue;
    const button = item("button", label);
    button.type = "button";
    button.dataset.action = action + (scope === "account" ? ":account" : "");
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", async () => {
      const response = await fetch("/v1/alerts/" + encodeURIComponent(alert.id) + "/feedback", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer " + token },
        body: JSON.stringify({ action: action, scope: scope }),
      });
      if (!response.ok) { button.title = "Not saved (" + response.status + "), try again"; return; }
      for (const other of group.querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === button));
      card.dataset.feedback = button.dataset.action;
    });
    group.append(button);
  }
}

// A lead in the side lists: "Dana Ruiz (Acme)".
function who(lead) {
  return (lead.name || lead.person) + (lead.company ? " (" + lead.company + ")" : "");
}

async function refreshHot() {
  const response = await fetch("/v1/reps/" + encodeURIComponent(rep) + "/hot?" + auth, { cache: "no-store" });
  if (!response.ok) return;
  const hot = await response.json();
  text($("rep-name"), "— " + hot.name);
  const list = $("hot");
  // Hottest first, each with its biggest reason: who to call first, and why.
  list.replaceChildren(...hot.leads.map((lead) => {
    const why = (lead.top_signals || []).slice(0, 2).map(([label]) => label).join(", ");
    return item("li", who(lead) + " — " + lead.grade + ", " + lead.engagement + (why ? " · " + why : ""));
  }));
  $("hot-empty").hidden = hot.leads.length > 0;
}

function minutes(seconds) {
  return seconds < 60 ? Math.round(seconds) + " s" : Math.round(seconds / 60) + " min";
}

async function refreshPresent() {
  const response = await fetch("/v1/reps/" + encodeURIComponent(rep) + "/present?" + auth, { cache: "no-store" });
  if (!response.ok) return;
  const present = await response.json();
  $("present").replaceChildren(...present.leads.map((lead) => {
    const visit = lead.presence;
    const pages = visit.pages === 1 ? "1 page" : visit.pages + " pages";
    const engaged = visit.engaged_seconds >= 1 ? " · " + minutes(visit.engaged_seconds) + " engaged" : "";
    const row = item("li", who(lead) + " — " + lead.grade + " · on " + visit.page + " · " + pages + engaged);
    row.dataset.person = lead.person;
    return row;
  }));
  $("present-empty").hidden = present.leads.length > 0;
}

function connect() {
  const events = new EventSource("/v1/reps/" + encodeURIComponent(rep) + "/events?" + auth);
  let replaying = true;
  setTimeout(() => { replaying = false; }, 1000);
  events.addEventListener("open", () => { text($("status"), "live").className = "status live"; });
  events.addEventListener("error", () => { text($("status"), "reconnecting…").className = "status"; });
  events.addEventListener("alert", (event) => {
    renderAlert(JSON.parse(event.data), !replaying);
    refreshHot();
  });
}

refreshHot();
setInterval(refreshHot, 10000);
refreshPresent();
setInterval(refreshPresent, 2000);
connect();
