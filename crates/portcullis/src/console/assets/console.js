// Portcullis console: progressive enhancement only; every page works without this script.
//
// Regions marked data-refresh="<url>" are reloaded from that URL every two seconds, so new approval
// requests appear without a reload. A refresh is skipped while the reviewer is in the middle of a
// decision (focus inside the region, or a reason typed), so nothing they type is lost.
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function busy(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    var fields = region.querySelectorAll("textarea, input[type=text]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value.trim() !== "") {
        return true;
      }
    }
    return false;
  }

  function refresh(region) {
    if (busy(region) || document.hidden) {
      return;
    }
    fetch(region.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (!busy(region) && region.innerHTML !== html) {
          region.innerHTML = html;
        }
        region.removeAttribute("data-stale");
      })
      .catch(function () {
        region.setAttribute("data-stale", "true");
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var regions = document.querySelectorAll("[data-refresh]");
    regions.forEach(function (region) {
      setInterval(function () { refresh(region); }, PERIOD_MS);
    });
  });
})();
