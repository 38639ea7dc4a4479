// ledgerflow dashboard: the only script. The pages work without it; with it,
// forms marked data-confirm ask first, and regions marked data-live refresh in place.
"use strict";
(function () {
  var PERIOD_MS = 2000;

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // A region is not refreshed while the user is typing in it, or once they have typed
  // into it or opened or closed one of its details (their work is not thrown away).
  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /INPUT|TEXTAREA|SELECT/.test(active.tagName)) {
      return true;
    }
    return region.dataset.dirty === "1";
  }

  function refresh(region) {
    if (document.hidden || busy(region)) {
      return;
    }
    fetch(region.dataset.live, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error(response.status); }
        return response.text();
      })
      .then(function (html) {
        if (busy(region) || html === region.dataset.last) { return; }
        // A run's page is replaced only when the run changed (its stream version).
        var version = /data-version="(\d+)"/.exec(html);
        if (region.dataset.version && version && version[1] === region.dataset.version) {
          return;
        }
        if (version) { region.dataset.version = version[1]; }
        region.dataset.last = html;
        region.innerHTML = html;
        region.dataset.updated = String(Date.now());
      })
      .catch(function () { /* the next tick tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (region) {
      var touched = function () { region.dataset.dirty = "1"; };
      region.addEventListener("input", touched);
      region.addEventListener("toggle", touched, true);
      window.setInterval(function () { refresh(region); }, PERIOD_MS);
    });
  });
})();
