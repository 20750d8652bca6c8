// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Fill the compose form's time zone with the browser's own.
  var zone = document.querySelector("[data-browser-zone]");
  if (zone && zone.value === "UTC" && window.Intl) {
    try { zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
  }
  // Show times in the viewer's zone.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
  });
})();
