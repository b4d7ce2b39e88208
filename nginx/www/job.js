/* The job page (SPEC §10): reads GET /v1/public/jobs/{id} (no API key; the
 * job id is the capability), polls it every second until the job is
 * terminal and shows status, queue position, ETA, progress, error and
 * outputs. Every value from the API goes in through textContent or a
 * property, never as HTML. */
"use strict";

(function () {
  var TERMINAL = { succeeded: 1, failed: 1, canceled: 1, expired: 1 };
  var POLL_MS = 1000;
  var UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
  var shownOutputs = "";

  function $(id) { return document.getElementById(id); }

  function text(id, value) {
    $(id).textContent = value === null || value === undefined || value === "" ? "–" : String(value);
  }

  function notice(message) {
    var n = $("notice");
    n.textContent = message;
    n.hidden = !message;
  }

  function when(iso) {
    if (!iso) return null;
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function duration(s) {
    if (typeof s !== "number" || !isFinite(s)) return null;
    s = Math.max(0, Math.round(s));
    if (s < 60) return "about " + s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return "about " + m + " min " + (s % 60) + " s";
    return "about " + Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function renderOutputs(outputs) {
    var key = JSON.stringify(outputs);
    if (key === shownOutputs) return;   // keep loaded images; don't flicker
    shownOutputs = key;
    var box = $("outputs");
    box.replaceChildren();
    outputs.forEach(function (o) {
      var fig = document.createElement("figure");
      var cap = document.createElement("figcaption");
      var type = typeof o.content_type === "string" ? o.content_type : "";
      if (typeof o.text === "string") {
        var pre = document.createElement("pre");
        pre.textContent = o.text;
        fig.appendChild(pre);
        cap.textContent = "#" + o.index + " text";
      } else if (typeof o.url === "string") {
        var link = document.createElement("a");
        link.href = o.url;
        link.rel = "noopener noreferrer";
        if (type.indexOf("image/") === 0) {
          var img = document.createElement("img");
          img.src = o.url;
          img.alt = "output " + o.index;
          img.referrerPolicy = "no-referrer";
          link.appendChild(img);
        } else {
          link.textContent = "download";
        }
        fig.appendChild(link);
        cap.textContent = "#" + o.index + " " + (type || "file") +
          (typeof o.bytes === "number" ? ", " + o.bytes + " bytes" : "");
      } else {
        cap.textContent = "#" + o.index + " " + (type || "file") + " (removed)";
      }
      fig.appendChild(cap);
      box.appendChild(fig);
    });
    $("outputs-section").hidden = outputs.length === 0;
  }

  function render(job) {
    text("status", job.status);
    $("status").className = "status status-" + String(job.status).replace(/[^a-z]/g, "");
    text("queue", job.queue);
    text("position", job.queue_position);
    text("eta", duration(job.eta_s));
    var bar = $("progress");
    if (typeof job.progress === "number") {
      bar.value = job.progress;
      bar.hidden = false;
      text("progress-text", Math.round(job.progress * 100) + " %");
    } else {
      bar.hidden = true;
      text("progress-text", job.status === "succeeded" ? "100 %" : null);
    }
    text("attempts", job.attempts);
    text("created", when(job.created_at));
    text("started", when(job.started_at));
    text("finished", when(job.finished_at));
    if (job.error) {
      text("error-code", job.error.code);
      text("error-message", job.error.message);
    }
    $("error").hidden = !job.error;
    renderOutputs(Array.isArray(job.outputs) ? job.outputs : []);
  }

  function poll(id) {
    fetch("/v1/public/jobs/" + encodeURIComponent(id), { cache: "no-store" })
      .then(function (r) {
        if (r.status === 404) {
          text("status", "not found");
          notice("No job has this id.");
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (job) {
        if (job === null) return;
        notice("");
        render(job);
        if (!TERMINAL[job.status]) setTimeout(poll, POLL_MS, id);
      })
      .catch(function (e) {
        notice("Cannot reach the server (" + e.message + "); retrying.");
        setTimeout(poll, POLL_MS * 3, id);
      });
  }

  var id = new URLSearchParams(window.location.search).get("id") || "";
  text("job-id", id);
  if (!UUID.test(id)) {
    text("status", "no job");
    notice("This page needs a job id: job.html?id=<job id>.");
    return;
  }
  poll(id.toLowerCase());
})();
