/* DBL tracking snippet. Paste in <head>:
 *   <script async src="https://COLLECTOR/t.js?k=WRITE_KEY"></script>
 * Options on the URL: forms=1 (capture forms with an email field), consent=1 (wait for
 * dbl.consent(true)). API: dbl.identify(email, traits, {userHash}), dbl.track(name, props),
 * dbl.consent(bool). userHash: HMAC-SHA256 of the email under the site's secret, made by
 * the site's backend; it raises the identify to trust "signed". Reports engaged time.
 * Honours Do-Not-Track and Global Privacy Control: then it does nothing. */
(function (w, d, n) {
  "use strict";
  var me = d.currentScript, src = new URL(me.src), key = src.searchParams.get("k");
  var host = src.origin, COOKIE = "dbl_aid", QUEUE = "dbl_q", LINK = "dbl_t";
  var early = Array.isArray(w.dbl) ? w.dbl : [];
  var off = n.doNotTrack === "1" || w.doNotTrack === "1" || n.globalPrivacyControl === true;
  var consented = src.searchParams.get("consent") !== "1", held = [];
  function uuid() {
    return w.crypto && crypto.randomUUID ? crypto.randomUUID() :
      "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
        var r = Math.random() * 16 | 0; return (c === "x" ? r : (r & 3 | 8)).toString(16);
      });
  }
  function anonId() {
    var m = d.cookie.match(/(?:^|; )dbl_aid=([^;]+)/), id = m ? m[1] : uuid();
    d.cookie = COOKIE + "=" + id + "; Max-Age=63072000; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
    return id;
  }
  function context(extra) {
    var c = { page: { path: location.pathname, url: location.href, referrer: d.referrer, title: d.title },
      userAgent: n.userAgent, library: { name: "dbl.js", version: "1" } };
    for (var k in extra) c[k] = extra[k];
    return c;
  }
  function post(body) {
    var blob = new Blob([body], { type: "text/plain" });
    if (n.sendBeacon && n.sendBeacon(host + "/v1/batch", blob)) return Promise.resolve(true);
    return fetch(host + "/v1/batch", { method: "POST", body: body, keepalive: true, credentials: "omit" })
      .then(function (r) { return r.ok || (r.status >= 400 && r.status < 500 && r.status !== 429); })
      .catch(function () { return false; });
  }
  function stored() { try { return JSON.parse(localStorage.getItem(QUEUE)) || []; } catch (e) { return []; } }
  function store(q) { try { localStorage.setItem(QUEUE, JSON.stringify(q.slice(-20))); } catch (e) { /* full or blocked */ } }
  function send(msgs) {
    var body = JSON.stringify({ writeKey: key, sentAt: new Date().toISOString(), batch: msgs });
    post(body).then(function (ok) { if (!ok) store(stored().concat(msgs)); });
  }
  function flushQueue() { var q = stored(); if (q.length) { store([]); send(q); } }
  function emit(msg) {
    if (off) return;
    msg.anonymousId = anonId(); msg.messageId = uuid(); msg.timestamp = new Date().toISOString();
    if (!consented) { held.push(msg); return; }
    send([msg]);
  }
  function page() { emit({ type: "page", properties: { path: location.pathname, url: location.href, title: d.title }, context: context() }); }
  var api = {
    identify: function (email, traits, options) {
      var t = {}; for (var k in traits || {}) t[k] = traits[k]; t.email = email;
      var hash = options && options.userHash;
      emit({ type: "identify", traits: t, context: context(hash ? { user_hash: String(hash) } : {}) });
    },
    track: function (name, props) { emit({ type: "track", event: String(name), properties: props || {}, context: context() }); },
    page: page,
    consent: function (yes) {
      consented = !!yes;
      if (consented) { var h = held; held = []; if (h.length) send(h); } else { held = []; }
    }
  };
  w.dbl = api;
  if (off) return;
  function wrap(name) {
    var original = history[name];
    history[name] = function () { var r = original.apply(this, arguments); setTimeout(page, 0); return r; };
  }
  wrap("pushState"); wrap("replaceState");
  w.addEventListener("popstate", page);
  var params = new URLSearchParams(location.search), link = params.get(LINK);
  if (link) {
    params.delete(LINK);
    history.replaceState(history.state, "", location.pathname + (params.toString() ? "?" + params : "") + location.hash);
    emit({ type: "identify", traits: {}, context: context({ dbl_link: link }) });
  } else { page(); }
  // Engaged time (page visible; focused or used in the last 30 s): "Page Engaged" every 15 s
  // of it, "Page Left" when hidden or closed; nothing while nobody looks.
  var engaged = 0, lastInput = 0, IDLE_MS = 30000, REPORT_S = 15;
  function report(event) {
    var seconds = engaged; engaged = 0;
    emit({ type: "track", event: event, properties: { engaged_seconds: seconds }, context: context() });
  }
  "mousemove keydown scroll touchstart click".split(" ").forEach(function (name) {
    w.addEventListener(name, function () { lastInput = Date.now(); }, { capture: true, passive: true });
  });
  setInterval(function () {
    if (d.visibilityState !== "visible" || !(d.hasFocus() || Date.now() - lastInput < IDLE_MS)) return;
    if (++engaged >= REPORT_S) report("Page Engaged");
  }, 1000);
  d.addEventListener("visibilitychange", function () { report(d.visibilityState === "visible" ? "Page Engaged" : "Page Left"); });
  w.addEventListener("pagehide", function () { if (d.visibilityState === "visible") report("Page Left"); });
  if (src.searchParams.get("forms") === "1") {
    // Only fields a rep needs are captured (a site adds more with `fields=a,b`); free text,
    // passwords, hidden fields and anything that looks like a card number never leave.
    var wanted = { email: "email", name: "name", firstname: "first_name", lastname: "last_name",
      company: "company", companyname: "company", title: "title", jobtitle: "title", phone: "phone" };
    var extra = (src.searchParams.get("fields") || "").split(",");
    for (var x = 0; x < extra.length; x++) if (extra[x]) wanted[canon(extra[x])] = extra[x];
    d.addEventListener("submit", function (e) {
      var f = e.target, t = {}, email = null;
      for (var i = 0; i < f.elements.length; i++) {
        var el = f.elements[i], trait = wanted[canon(el.name || el.id || "")];
        if (!trait || el.type === "password" || el.type === "hidden" || !el.value || cardLike(el.value)) continue;
        if (trait === "email" || el.type === "email") email = el.value; else t[trait] = el.value;
      }
      if (!email) return;
      t.email = email;
      emit({ type: "track", event: "Form Submitted", properties: Object.assign({ form_id: f.id || f.getAttribute("name") || "form" }, t),
        context: context({ traits: t }) });
    }, true);
  }
  function canon(name) { return String(name).toLowerCase().replace(/[^a-z]/g, ""); }
  function cardLike(value) {
    var digits = String(value).replace(/[\s.-]/g, "");
    if (!/^\d{13,19}$/.test(digits)) return false;
    for (var sum = 0, k = 0; k < digits.length; k++) {
      var n = +digits[digits.length - 1 - k];
      if (k % 2) { n *= 2; if (n > 9) n -= 9; }
      sum += n;
    }
    return sum % 10 === 0;
  }
  for (var i = 0; i < early.length; i++) { var call = early[i]; if (api[call[0]]) api[call[0]].apply(null, call.slice(1)); }
  flushQueue(); setInterval(flushQueue, 5000);
})(window, document, navigator);
