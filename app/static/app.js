// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Fill the compose form's time zone with the browser's own.
  var zone = document.querySelector("[data-browser-zone]");
  if (zone && zone.value === "UTC" && window.Intl) {
    try { zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
  }
  // Ask before a change that cannot be undone (deleting a contact).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // Show times in the viewer's zone.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
  });
  // A new campaign: the server's progress lines while it queues the messages.
  var campaign = document.querySelector("form[data-campaign]");
  if (campaign && window.fetch && window.TextDecoder) {
    campaign.addEventListener("submit", function (event) {
      event.preventDefault();
      var bar = campaign.querySelector("progress");
      var status = campaign.querySelector("[data-campaign-status]");
      bar.hidden = false;
      bar.removeAttribute("value");
      status.textContent = "Choosing the audience…";
      fetch(campaign.action || window.location.href, {method: "POST", body: new FormData(campaign),
                                       headers: {"Accept": "application/x-ndjson"}})
        .then(function (resp) {
          var reader = resp.body.getReader(), decoder = new TextDecoder(), buffer = "";
          function pump() {
            return reader.read().then(function (chunk) {
              if (chunk.done) { return; }
              buffer += decoder.decode(chunk.value, {stream: true});
              var lines = buffer.split("\n");
              buffer = lines.pop();
              lines.forEach(function (line) {
                if (!line) { return; }
                var item = JSON.parse(line);
                if (item.error) { status.textContent = item.error.message; }
                else if ("queued" in item) { status.textContent = item.queued.toLocaleString() + " recipients queued…"; }
                else { bar.value = 100; status.textContent = "Queued " + item.counts.queued + " messages; " + item.counts.skipped_unsubscribed + " unsubscribed skipped."; window.setTimeout(function () { window.location.reload(); }, 800); }
              });
              return pump();
            });
          }
          return pump();
        })
        .catch(function () { status.textContent = "Queueing failed."; });
    });
  }
  // Contacts import: upload progress, then the server's progress lines, then the report.
  var form = document.querySelector("form[data-import]");
  if (form && window.XMLHttpRequest && window.FormData) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var bar = form.querySelector("progress");
      var status = form.querySelector("[data-import-status]");
      var report = document.querySelector("[data-import-report]");
      var xhr = new XMLHttpRequest();
      var seen = 0;
      bar.hidden = false;
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/x-ndjson");
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          bar.value = Math.round(50 * e.loaded / e.total);
          status.textContent = "Uploading… " + Math.round(100 * e.loaded / e.total) + "%";
        }
      };
      function handle(line) {
        var item = JSON.parse(line);
        if (item.error) { status.textContent = item.error.message; return; }
        if ("rows" in item) {
          status.textContent = item.rows.toLocaleString() + " rows processed…";
          bar.removeAttribute("value");
          return;
        }
        bar.value = 100;
        status.textContent = "Done.";
        var html = "<p class=\"flash ok\" role=\"status\">Imported " + item.imported + ", updated " +
          item.updated + ", rejected " + item.rejected.length + ".</p>";
        if (item.rejected.length) {
          html += "<ul class=\"rejected\">" + item.rejected.map(function (r) {
            var li = document.createElement("li");
            li.textContent = "Row " + r.row + ": " + r.error;
            return li.outerHTML;
          }).join("") + "</ul>";
        }
        report.innerHTML = html;
      }
      xhr.onprogress = function () {
        var lines = xhr.responseText.split("\n");
        for (; seen < lines.length - 1; seen++) { if (lines[seen]) { handle(lines[seen]); } }
      };
      xhr.onload = function () {
        xhr.onprogress();
        if (xhr.status >= 400) { status.textContent = "The import failed (" + xhr.status + ")."; }
      };
      xhr.onerror = function () { status.textContent = "The upload failed."; };
      xhr.send(new FormData(form));
    });
  }
  // Team switcher: switch as soon as a team is chosen.
  document.querySelectorAll("form[data-autosubmit]").forEach(function (f) {
    var button = f.querySelector("[data-autosubmit-button]");
    if (button) { button.hidden = true; }
    f.querySelector("select").addEventListener("change", function () { f.submit(); });
  });
  // Live preview: the form's fields, rendered by the server as the recipient will see them.
  document.querySelectorAll("form[data-live-preview]").forEach(function (f) {
    var box = document.querySelector("[data-preview]") || f;
    var subject = box.querySelector("[data-preview-subject]");
    var frame = box.querySelector("[data-preview-html]");
    var text = box.querySelector("[data-preview-text]");
    var error = box.querySelector("[data-preview-error]");
    if (!window.fetch || !frame) { return; }
    var timer = null, seq = 0;
    function refresh() {
      var mine = ++seq;
      var fields = new FormData(f);
      // The preview renders the parts: files chosen for upload are not sent with it.
      f.querySelectorAll("input[type=file]").forEach(function (i) { fields.delete(i.name); });
      fetch(f.getAttribute("data-live-preview"), {method: "POST", body: fields,
                                                   headers: {"Accept": "application/json"}})
        .then(function (resp) { return resp.json(); })
        .then(function (out) {
          if (mine !== seq) { return; }  // an older answer after a newer one
          if (out.error) {
            error.textContent = out.error.message;
            error.hidden = false;
            return;
          }
          error.hidden = true;
          if (subject) { subject.textContent = out.subject; }
          frame.srcdoc = out.html;
          if (text) { text.textContent = out.text; }
          box.setAttribute("data-preview-ready", String(mine));
        })
        .catch(function () { error.textContent = "The preview could not be made."; error.hidden = false; });
    }
    function later() { window.clearTimeout(timer); timer = window.setTimeout(refresh, 300); }
    f.addEventListener("input", later);
    f.addEventListener("change", later);
    refresh();
  });
})();
