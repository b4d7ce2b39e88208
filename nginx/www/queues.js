/* The queue dashboard (SPEC §10): polls GET /v1/queues every 2 s with the
 * API key given in the page's fragment (queues.html#key=...) or typed in,
 * and shows per queue its depth by status, last hour's throughput and
 * failures, backends and median wait and run times. Values from the API go
 * in through textContent only. */
"use strict";

(function () {
  var POLL_MS = 2000;
  var KEY_STORE = "genq.key";
  var key = "";

  function $(id) { return document.getElementById(id); }

  function notice(message) {
    $("notice").textContent = message;
    $("notice").hidden = !message;
  }

  function seconds(s) {
    if (typeof s !== "number" || !isFinite(s)) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    return Math.round(s / 60) + " min";
  }

  function count(n) { return typeof n === "number" ? String(n) : "–"; }

  function cell(row, value, cls) {
    var td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  function render(queues) {
    var body = $("rows");
    body.replaceChildren();
    queues.forEach(function (q) {
      var tr = document.createElement("tr");
      var b = q.backends || {};
      tr.dataset.queue = String(q.name);
      cell(tr, String(q.name), "name");
      cell(tr, q.paused ? "paused" : (q.requires_approval ? "approval" : "open"),
           q.paused ? "state paused" : "state");
      cell(tr, count(q.held), "num held");
      cell(tr, count(q.waiting), "num waiting");
      cell(tr, count(q.queued), "num queued");
      cell(tr, count(q.running), "num running");
      cell(tr, count(q.succeeded), "num succeeded");
      cell(tr, count((q.failed || 0) + (q.expired || 0)), "num failed");
      cell(tr, count(b.up) + " · " + count(b.busy) + " · " + count(b.total),
           "num backends" + (b.total && b.up < b.total ? " degraded" : ""));
      cell(tr, seconds(q.median_wait_s), "num wait");
      cell(tr, seconds(q.median_run_s), "num run");
      body.appendChild(tr);
    });
    $("queues").hidden = false;
    $("updated").textContent = new Date().toLocaleTimeString();
  }

  function askForKey(message) {
    notice(message);
    $("key-form").hidden = false;
  }

  function poll() {
    fetch("/v1/queues", { cache: "no-store", headers: { Authorization: "Bearer " + key } })
      .then(function (r) {
        if (r.status === 401) {
          sessionStorage.removeItem(KEY_STORE);
          askForKey("The server did not accept this API key.");
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        if (data === null) return;
        notice("");
        render(Array.isArray(data.queues) ? data.queues : []);
        setTimeout(poll, POLL_MS);
      })
      .catch(function (e) {
        notice("Cannot reach the server (" + e.message + "); retrying.");
        setTimeout(poll, POLL_MS * 2);
      });
  }

  $("key-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-form").hidden = true;
    poll();
  });

  var fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  key = fragment.get("key") || sessionStorage.getItem(KEY_STORE) || "";
  if (fragment.get("key")) {
    sessionStorage.setItem(KEY_STORE, key);
    // Keep the key out of the address bar and the history from here on.
    history.replaceState(null, "", window.location.pathname);
  }
  if (!key) {
    askForKey("This page shows the queues to API key holders.");
    return;
  }
  poll();
})();
