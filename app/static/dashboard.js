// Draws the dashboard's charts from the JSON the page carries (the tables stay for everyone).
(function () {
  "use strict";
  var form = document.querySelector("[data-dashboard-form]");
  var zone = document.querySelector("[data-dashboard-zone]");
  // First visit: ask again in the viewer's own time zone.
  if (zone && window.Intl && !/[?&]tz=/.test(window.location.search)) {
    var mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (mine && mine !== zone.value) { zone.value = mine; form.submit(); return; }
  }
  if (!window.Chart) { return; }
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var colours = {sent: "#0b57d0", opened: "#1a7f37", clicked: "#8250df", replied: "#bf8700",
                 bounced: "#c62828", unsubscribed: "#57606a"};
  var common = {responsive: true, maintainAspectRatio: false, animation: false};
  new window.Chart(document.getElementById("chart-days"), {
    type: "line",
    data: {labels: data.days, datasets: Object.keys(colours).map(function (k) {
      return {label: k, data: data.series[k], borderColor: colours[k], backgroundColor: colours[k],
              tension: 0.2, pointRadius: 2};
    })},
    options: Object.assign({scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}, common)
  });
  function rateSets(rows, labelOf) {
    return ["open", "click", "reply"].map(function (r, i) {
      return {label: r + " rate", backgroundColor: ["#1a7f37", "#8250df", "#bf8700"][i],
              data: rows.map(function (row) { return row.rates[r] === null ? 0 : Math.round(row.rates[r] * 1000) / 10; })};
    });
  }
  var percent = {scales: {y: {beginAtZero: true, suggestedMax: 100, ticks: {callback: function (v) { return v + "%"; }}}}};
  new window.Chart(document.getElementById("chart-campaigns"), {
    type: "bar",
    data: {labels: data.campaigns.map(function (c) { return c.name; }), datasets: rateSets(data.campaigns)},
    options: Object.assign({}, percent, common)
  });
  data.campaigns.forEach(function (c) {
    var canvas = document.getElementById("chart-variants-" + c.id);
    if (!canvas) { return; }
    var keys = Object.keys(c.variants);
    new window.Chart(canvas, {
      type: "bar",
      data: {labels: keys.map(function (k) { return "variant " + k; }),
             datasets: rateSets(keys.map(function (k) { return c.variants[k]; }))},
      options: Object.assign({}, percent, common)
    });
  });
  document.body.setAttribute("data-charts-drawn", String(1 + data.campaigns.length));
})();
