// Progressive enhancement only: every page works without this file (forms post, links
// go, times read in UTC); with it, pages confirm, refresh themselves and show live counts.
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  // -- the phone menu -------------------------------------------------------------------
  var menu = document.querySelector("[data-menu]");
  var nav = document.getElementById("main-nav");
  if (menu && nav) {
    menu.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      menu.setAttribute("aria-expanded", String(open));
    });
  }

  // Tables that turn into cards on phones: a cell without its column's name gets it.
  function labelCells(scope) {
    (scope || document).querySelectorAll("table.queue").forEach(function (table) {
      var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) { return th.textContent.trim(); });
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        Array.prototype.forEach.call(tr.children, function (td, i) {
          if (!td.hasAttribute("data-label") && names[i] && td.colSpan === 1 && td.textContent.trim()) { td.setAttribute("data-label", names[i]); }
        });
      });
    });
  }
  labelCells();
  // A table wider than the screen scrolls sideways: reachable by keyboard too.
  document.querySelectorAll(".table-wrap:not([tabindex])").forEach(function (wrap) {
    if (wrap.scrollWidth > wrap.clientWidth + 1) {
      wrap.tabIndex = 0;
      wrap.setAttribute("role", "region");
      var caption = wrap.querySelector("caption");
      wrap.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table");
    }
  });

  // -- times in the viewer's zone, with the zone named --------------------------------
  var TIME_FORMAT = {weekday: "short", day: "numeric", month: "short", year: "numeric",
                     hour: "2-digit", minute: "2-digit", timeZoneName: "short"};
  function localizeTimes(scope) {
    (scope || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) { return; }
      try { el.textContent = d.toLocaleString(undefined, TIME_FORMAT); } catch (e) { return; }
      el.title = el.getAttribute("datetime");
    });
  }
  localizeTimes();

  // Fill time zone fields with the browser's own.
  document.querySelectorAll("[data-browser-zone]").forEach(function (zone) {
    if (zone.value === "UTC" && window.Intl) {
      try { zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* keep UTC */ }
    }
  });

  // -- confirmations: say what will happen (and to how many) before it does -------------
  var dialog = null;
  function ask(title, text, yes, danger) {
    return new Promise(function (resolve) {
      if (!window.HTMLDialogElement) { resolve(window.confirm(text)); return; }
      if (!dialog) {
        dialog = document.createElement("dialog");
        dialog.className = "confirm";
        dialog.setAttribute("aria-labelledby", "confirm-title");
        dialog.innerHTML = "<h2 id=\"confirm-title\"></h2><p data-confirm-text></p>" +
          "<div class=\"actions\"><button type=\"button\" data-no>Keep things as they are</button>" +
          "<button type=\"button\" data-yes></button></div>";
        document.body.appendChild(dialog);
      }
      dialog.querySelector("h2").textContent = title;
      dialog.querySelector("[data-confirm-text]").textContent = text;
      var yesButton = dialog.querySelector("[data-yes]");
      yesButton.textContent = yes || "Yes";
      yesButton.className = danger ? "danger solid" : "primary";
      function done(answer) {
        yesButton.onclick = null;
        dialog.querySelector("[data-no]").onclick = null;
        dialog.onclose = null;
        if (dialog.open) { dialog.close(); }
        resolve(answer);
      }
      yesButton.onclick = function () { done(true); };
      dialog.querySelector("[data-no]").onclick = function () { done(false); };
      dialog.onclose = function () { done(false); };
      dialog.showModal();
      dialog.querySelector("[data-no]").focus();
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var text = button && button.getAttribute("data-confirm-template")
      ? button.getAttribute("data-confirm-template").replace("{n}", String(form.querySelectorAll("input[name=message_id]:checked").length))
      : form.getAttribute("data-confirm");
    if (!text || form.hasAttribute("data-confirmed")) { return; }
    event.preventDefault();
    var yes = (button && button.getAttribute("data-confirm-button")) || form.getAttribute("data-confirm-button");
    var danger = button ? button.classList.contains("danger") : false;
    ask("Are you sure?", text, yes, danger || /delete|cancel|stop|disconnect|remove|revoke|rotate/i.test(yes || "")).then(function (ok) {
      if (!ok) { return; }
      form.setAttribute("data-confirmed", "");
      if (form.requestSubmit) { form.requestSubmit(button || undefined); } else { form.submit(); }
    });
  }, true);

  // -- the queue's selection: select all, a count, the bulk buttons ----------------------
  function bindBulk(scope) {
    var form = scope.querySelector("form[data-bulk]");
    if (!form) { return; }
    var boxes = function () { return form.querySelectorAll("input[name=message_id]"); };
    var all = form.querySelector("[data-select-all]");
    var label = form.querySelector("[data-selected-count]");
    function update() {
      var n = form.querySelectorAll("input[name=message_id]:checked").length;
      label.textContent = n ? n + " selected" : "None selected";
      form.querySelectorAll("[data-bulk-action]").forEach(function (b) { b.disabled = n === 0; });
      if (all) { all.checked = n > 0 && n === boxes().length; }
    }
    form.addEventListener("change", function (event) {
      if (event.target === all) { boxes().forEach(function (b) { b.checked = all.checked; }); }
      update();
    });
    update();
  }
  bindBulk(document);

  // -- pages that refresh themselves (the queue, a message) ---------------------------
  document.querySelectorAll("[data-live]").forEach(function (region) {
    if (!window.fetch) { return; }
    var every = parseInt(region.getAttribute("data-live-every"), 10) || 5000;
    function busy() {
      return document.hidden || (dialog && dialog.open) ||
        (region.contains(document.activeElement) && document.activeElement !== document.body) ||
        !!region.querySelector("details[open]");
    }
    function tick() {
      if (busy()) { window.setTimeout(tick, every); return; }
      fetch(region.getAttribute("data-live"), {credentials: "same-origin", cache: "no-store",
                                               headers: {"Accept": "text/html"}})
        .then(function (resp) {
          if (!resp.ok) { return null; }
          var version = resp.headers.get("X-Live-Version");
          if (!version || version === region.getAttribute("data-live-version")) { return null; }
          return resp.text().then(function (html) { return {html: html, version: version}; });
        })
        .then(function (fresh) {
          if (!fresh || busy()) { return; }
          var checked = Array.prototype.map.call(region.querySelectorAll("input[name=message_id]:checked"), function (b) { return b.value; });
          region.innerHTML = fresh.html;
          region.setAttribute("data-live-version", fresh.version);
          checked.forEach(function (v) {
            var box = region.querySelector("input[name=message_id][value=\"" + v + "\"]");
            if (box) { box.checked = true; }
          });
          localizeTimes(region);
          labelCells(region);
          bindBulk(region);
          region.setAttribute("data-live-updated", String(Date.now()));
        })
        .catch(function () { /* the next round tries again */ })
        .then(function () { window.setTimeout(tick, every); });
    }
    tick();
  });

  // -- audience sizes: a segment form's conditions, a campaign's segment ----------------
  function countAudience(url, fields, out, words) {
    return fetch(url, {method: "POST", body: fields, credentials: "same-origin",
                       headers: {"Accept": "application/json"}})
      .then(function (resp) { return resp.json(); })
      .then(function (n) {
        if (n.error) { if (out) { out.textContent = n.error.message; } return null; }
        if (!out) { return n; }
        out.textContent = (words ? "Contacts whose " + n.words + ": " : "") +
          n.matching.toLocaleString() + " contact" + (n.matching === 1 ? "" : "s") + ", " +
          n.subscribed.toLocaleString() + " subscribed (who get it).";
        return n;
      });
  }
  document.querySelectorAll("form[data-audience-count]").forEach(function (form) {
    var out = form.querySelector("[data-audience-size]");
    var timer = null;
    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { countAudience(form.getAttribute("data-audience-count"), new FormData(form), out, true); }, 300);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    later();
  });

  // One saved segment's size (or every contact's, without an id), as the server counts it.
  function segmentFields(token, segmentId) {
    var fields = new FormData();
    fields.append("csrf_token", token);
    fields.append("segment_id", segmentId || "");
    return fields;
  }

  // A big team's segments: each counted after the page has loaded.
  document.querySelectorAll("[data-count-segment]").forEach(function (cell) {
    var token = document.querySelector("[name=csrf_token]");
    if (!window.fetch || !token) { return; }
    countAudience(cell.getAttribute("data-count-url"),
                  segmentFields(token.value, cell.getAttribute("data-count-segment")), null, false)
      .then(function (n) {
        if (!n) { cell.textContent = "?"; return; }
        cell.textContent = n.matching.toLocaleString();
        cell.parentNode.querySelector("[data-segment-subscribed]").textContent = n.subscribed.toLocaleString();
      });
  });

  // A segment picker elsewhere (compose): its size as it is chosen.
  document.querySelectorAll("select[data-count-audience]").forEach(function (select) {
    var out = select.parentNode.querySelector("[data-audience-size]");
    function refresh() {
      countAudience(select.getAttribute("data-count-audience"),
                    segmentFields(select.form.querySelector("[name=csrf_token]").value, select.value),
                    out, false);
    }
    select.addEventListener("change", refresh);
    refresh();
  });

  // -- a new campaign: its size confirmed, then the server's progress lines -------------
  var campaign = document.querySelector("form[data-campaign]");
  if (campaign && window.fetch && window.TextDecoder) {
    var sizeOut = campaign.querySelector("[data-audience-size]");
    var counter = campaign.getAttribute("data-count-url");
    function refreshSize() {
      var seg = campaign.querySelector("[name=segment_id]");
      return countAudience(counter, segmentFields(campaign.querySelector("[name=csrf_token]").value,
                                                  seg ? seg.value : ""), sizeOut, false);
    }
    campaign.addEventListener("change", function (e) { if (e.target.name === "segment_id") { refreshSize(); } });
    refreshSize();
    campaign.addEventListener("submit", function (event) {
      event.preventDefault();
      refreshSize().then(function (n) {
        if (!n) { return false; }
        var from = campaign.querySelector("[name=from]");
        var sender = from && from.value ? from.value : campaign.getAttribute("data-sender");
        var when = campaign.querySelector("[name=local_time]").value ? "at " + campaign.querySelector("[name=local_time]").value + " in each contact's zone" : "starting now";
        var text = "Send to " + n.subscribed.toLocaleString() + " contact" + (n.subscribed === 1 ? "" : "s") +
          (sender ? " from " + sender : "") + " " + when + "?" +
          (n.matching > n.subscribed ? " (" + (n.matching - n.subscribed).toLocaleString() + " unsubscribed or bounced are skipped.)" : "");
        return ask("Queue this campaign?", text, "Queue the campaign", false);
      }).then(function (ok) { if (ok) { queueCampaign(); } });
    });
    function queueCampaign() {
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
                if (item.error) { status.textContent = item.error.message; bar.hidden = true; }
                else if ("queued" in item) { status.textContent = item.queued.toLocaleString() + " recipients queued…"; }
                else { bar.value = 100; status.textContent = "Queued " + item.counts.queued.toLocaleString() + " messages; " + item.counts.skipped_unsubscribed.toLocaleString() + " unsubscribed skipped."; window.setTimeout(function () { window.location.reload(); }, 800); }
              });
              return pump();
            });
          }
          return pump();
        })
        .catch(function () { status.textContent = "Queueing failed."; });
    }
  }

  // -- contacts import: upload progress, the server's progress, the report, the table ---
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
      function item(text, cls) {
        var li = document.createElement("li");
        li.textContent = text;
        if (cls) { li.className = cls; }
        return li;
      }
      function handle(line) {
        var out = JSON.parse(line);
        if (out.error) { status.textContent = out.error.message; return; }
        if ("rows" in out) {
          status.textContent = out.rows.toLocaleString() + " rows processed…";
          bar.removeAttribute("value");
          return;
        }
        bar.value = 100;
        status.textContent = "Done.";
        var merged = out.merged || [];
        report.innerHTML = "";
        var summary = document.createElement("p");
        summary.className = "flash ok";
        summary.setAttribute("role", "status");
        summary.textContent = "Imported " + out.imported + ", updated " + out.updated +
          ", merged " + merged.length + ", rejected " + out.rejected.length + ".";
        report.appendChild(summary);
        if (out.rejected.length || merged.length) {
          var list = document.createElement("ul");
          out.rejected.forEach(function (r) { list.appendChild(item("Row " + r.row + ": " + r.error, "rejected")); });
          merged.forEach(function (m) { list.appendChild(item("Row " + m.row + ": same address as row " + m.same_as_row + " (" + m.email + "); merged into it, its values win", "warning-text")); });
          report.appendChild(list);
        }
        // The table below shows the contacts as they are now.
        fetch(window.location.href, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-contacts]");
          var here = document.querySelector("[data-contacts]");
          if (fresh && here) { here.innerHTML = fresh.innerHTML; localizeTimes(here); }
        });
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

  // Compose: the choices that need a saved template say so as they are picked.
  document.querySelectorAll("form[data-needs-template]").forEach(function (f) {
    var note = f.querySelector("[data-template-note]");
    function check() {
      var list = f.querySelector("input[name=audience][value=contacts]");
      var recurring = f.querySelector("input[name=when][value=recurring]");
      var template = f.querySelector("[name=template_id]");
      var needs = (list && list.checked) || (recurring && recurring.checked);
      note.hidden = !(needs && template && !template.value);
    }
    f.addEventListener("change", check);
    check();
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
