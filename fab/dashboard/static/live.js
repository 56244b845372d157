// The dashboard's only script (no build step; the CSP allows no inline script).
// On an operation's page it follows the log while the operation runs: Server-Sent
// Events from <pre id="log" data-stream>, one <span class="line" data-n> per line,
// until the stream says `end`; then it reads the operation's outcome from its JSON.
// On the environments page (<body data-watch>) it asks the API every 5 s which operations
// run, and reloads the page when that changes (one started or ended).
"use strict";

(function () {
  function follow(log) {
    var indicator = document.getElementById("live-indicator");
    var status = document.getElementById("status");
    var url = log.dataset.stream + "?after=" + encodeURIComponent(log.dataset.after || "0");
    var source = new EventSource(url);
    if (indicator) { indicator.classList.remove("hidden"); }

    source.addEventListener("line", function (event) {
      var line = JSON.parse(event.data);
      var last = log.lastElementChild;
      if (last && Number(last.dataset.n) >= line.n) { return; }  // already shown
      var follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      var span = document.createElement("span");
      span.className = "line";
      span.dataset.n = String(line.n);
      span.textContent = line.text + "\n";  // text, never HTML
      log.appendChild(span);
      if (follow) { window.scrollTo(0, document.body.scrollHeight); }
    });

    source.addEventListener("end", function () {
      source.close();
      if (indicator) { indicator.classList.add("hidden"); }
      if (status && status.dataset.api) { showOutcome(status); }
    });
  }

  function showOutcome(status) {
    fetch(status.dataset.api, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (operation) {
        if (!operation) { return; }
        status.dataset.outcome = operation.outcome;
        var shown = status.querySelector(".outcome");
        if (shown) {
          shown.className = "outcome " + operation.outcome;
          shown.textContent = operation.outcome;
        }
      });
  }

  // "env:id env:id", as the page writes it in data-running.
  function runningNow(environments) {
    return environments.filter(function (env) { return env.running; })
      .map(function (env) { return env.environment + ":" + env.running.id; }).join(" ");
  }

  function watchRunning(body) {
    window.setInterval(function () {
      fetch(body.dataset.watch, { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.json() : null; })
        .then(function (data) {
          if (data && runningNow(data.environments) !== body.dataset.running) { window.location.reload(); }
        })
        .catch(function () {});  // the dashboard restarting: try again next time
    }, 5000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("log");
    if (log && log.dataset.follow === "yes") { follow(log); }
    if (document.body.dataset.watch) { watchRunning(document.body); }
  });
})();
