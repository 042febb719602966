// Pagecast dashboard behaviour: confirmations, personalisation chips, live campaign progress.
(function () {
  "use strict";

  // Forms with data-confirm ask first (the server enforces permissions regardless).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Personalisation chips insert their placeholder at the cursor of the message text.
  document.addEventListener("click", function (event) {
    var chip = event.target.closest("[data-insert]");
    if (!chip) return;
    var set = chip.closest("fieldset.message-fields");
    var text = (set && set.querySelector("textarea[name$=text]")) || document.getElementById("text");
    var at = text.selectionStart || text.value.length;
    text.value = text.value.slice(0, at) + chip.dataset.insert + text.value.slice(text.selectionEnd || at);
    text.focus();
    text.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // The message text's live counter: its length against Messenger's limit (640 with
  // buttons, else 2,000). Nothing is cut: over the limit it says so, and Save refuses.
  function count() {
    document.querySelectorAll("textarea[data-counter]").forEach(function (text) {
      var out = document.getElementById(text.dataset.counter);
      if (!out) return;
      var form = text.form;
      var set = text.closest("fieldset.message-fields") || form;
      var buttons = set ? Array.prototype.some.call(
        set.querySelectorAll(".button-title"), function (b) { return b.value.trim() !== ""; }) : false;
      var limit = parseInt(buttons ? out.dataset.buttonLimit : out.dataset.limit, 10);
      var length = Array.from(text.value.trim()).length;
      var shown = length.toLocaleString("en") + " / " + limit.toLocaleString("en") + " characters";
      if (length > limit) {
        shown += ": " + (length - limit).toLocaleString("en") + " over Messenger's limit" +
          (buttons ? " for a text with buttons" : "") + "; shorten it";
      }
      out.textContent = shown;
      out.classList.toggle("over", length > limit);
    });
  }

  // The message kind shows its own fields only (the server reads only the chosen kind's).
  function kinds() {
    document.querySelectorAll("fieldset.message-fields").forEach(function (set) {
      var chosen = set.querySelector("input[name$=message_kind]:checked");
      set.querySelectorAll(".kind-section").forEach(function (section) {
        section.hidden = !chosen || section.dataset.kind !== chosen.value;
      });
    });
  }
  document.addEventListener("input", count);
  document.addEventListener("change", function () { kinds(); count(); });
  document.addEventListener("DOMContentLoaded", function () { kinds(); count(); });

  // Tag inputs take comma-separated names; their suggestions (the Page's tags, a <datalist>
  // that the composer's preview refreshes) keep the names typed before the last comma.
  function suggestTags(input) {
    var list = document.getElementById("known-tags");
    if (!list || input.getAttribute("list") !== "known-tags") return;
    var cut = input.value.lastIndexOf(",");
    var before = cut < 0 ? "" : input.value.slice(0, cut + 1).replace(/\s*$/, " ");
    list.querySelectorAll("option[data-tag]").forEach(function (option) {
      option.value = before + option.dataset.tag;
    });
  }
  document.addEventListener("input", function (event) { suggestTags(event.target); });
  document.addEventListener("focusin", function (event) { suggestTags(event.target); });
  document.addEventListener("htmx:afterSwap", function () {
    if (document.activeElement) suggestTags(document.activeElement);
  });

  // Bar widths come as data-width (a percentage): the Content-Security-Policy allows no
  // inline style attribute, but a script of ours may set the style.
  function widths(root) {
    root.querySelectorAll("[data-width]").forEach(function (el) {
      el.style.width = Math.max(0, Math.min(100, parseFloat(el.dataset.width) || 0)) + "%";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { widths(document); });
  document.addEventListener("htmx:load", function (event) { widths(event.detail.elt); });

  // "Go back" links: back in history when there is one, else their own href.
  document.addEventListener("click", function (event) {
    var back = event.target.closest("[data-back]");
    if (back && window.history.length > 1) { event.preventDefault(); window.history.back(); }
  });

  // HTMX swaps only 2xx answers: show an error fragment from the server anyway.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status >= 400) { event.detail.shouldSwap = true; event.detail.isError = false; }
  });

  // "Download CSV" follows the deliveries table's filter: each page of the table names the
  // CSV of its filter (web/dashboard/deliveries.py).
  document.addEventListener("htmx:afterSwap", function (event) {
    var link = document.getElementById("csv-link");
    var named = event.detail.target.querySelector("[data-csv-url]");
    if (link && named && event.detail.target.id === "deliveries") link.href = named.dataset.csvUrl;
  });

  var FINAL = ["completed", "cancelled"];

  function apply(root, body) {
    var counts = body.counts, total = counts.total;
    var done = total - counts.pending - counts.sending;
    var reached = counts.sent + counts.delivered + counts.read;
    var values = {
      percent: total ? Math.round(100 * done / total) : 0,
      delivered_rate: reached ? Math.round(100 * (counts.delivered + counts.read) / reached) : 0,
      read_rate: reached ? Math.round(100 * counts.read / reached) : 0,
      rate: body.rate_per_second, eta: body.eta_seconds
    };
    root.querySelectorAll("[data-count]").forEach(function (el) { el.textContent = counts[el.dataset.count]; });
    root.querySelectorAll("[data-field]").forEach(function (el) { el.textContent = values[el.dataset.field]; });
    var engaged = body.engagement || {};
    root.querySelectorAll("[data-engaged]").forEach(function (el) {
      if (engaged[el.dataset.engaged] !== undefined) el.textContent = engaged[el.dataset.engaged];
    });
    var reconciling = body.reconciling, notice = root.querySelector("[data-reconciling]");
    if (notice) {
      notice.hidden = !reconciling;
      if (reconciling) {
        notice.querySelector("[data-reconciling-count]").textContent = reconciling.count;
        notice.querySelector("[data-reconciling-until]").textContent = reconciling.until;
        notice.querySelector("[data-reconciling-why]").textContent = reconciling.why;
      }
    }
    var waiting = body.waiting, waits = root.querySelector("[data-waiting]");
    if (waits) {
      waits.hidden = !waiting;
      if (waiting) waits.querySelector("[data-waiting-count]").textContent = waiting.count;
    }
    root.querySelectorAll(".progress-card .fill").forEach(function (el) { el.style.width = values.percent + "%"; });
    root.querySelectorAll(".progress-card [role=progressbar]").forEach(function (el) { el.setAttribute("aria-valuenow", values.percent); });
    if (body.status !== root.dataset.status) {
      // A new state brings other buttons, errors and audit lines: refresh that part.
      root.dataset.status = body.status;
      if (window.htmx) htmx.ajax("GET", "/campaigns/" + root.dataset.campaignId + "/panel", { target: "#panel", swap: "innerHTML" });
    }
  }

  function live() {
    var root = document.getElementById("campaign");
    if (!root) return;
    var id = root.dataset.campaignId;
    var note = function (text) { var el = document.getElementById("live-state"); if (el) el.textContent = text; };
    var polling = null;
    function poll() {
      if (polling) return;
      note("Live updates: polling every 3 s.");
      polling = setInterval(function () {
        fetch("/api/campaigns/" + id, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (body) { if (body) apply(root, body); if (body && FINAL.indexOf(body.status) >= 0) { clearInterval(polling); note("Finished."); } });
      }, 3000);
    }
    if (FINAL.indexOf(root.dataset.status) >= 0) { note("Finished."); return; }
    if (!window.EventSource) { poll(); return; }
    var source = new EventSource("/api/campaigns/" + id + "/events");
    source.addEventListener("open", function () { note("Live updates: connected (server-sent events)."); });
    source.addEventListener("progress", function (event) {
      var body = JSON.parse(event.data);
      apply(root, body);
      if (FINAL.indexOf(body.status) >= 0) { source.close(); note("Finished."); }
    });
    source.addEventListener("error", function () {
      // The stream ends when the campaign is finished; otherwise fall back to polling.
      if (FINAL.indexOf(root.dataset.status) >= 0) { source.close(); return; }
      source.close(); poll();
    });
  }
  document.addEventListener("DOMContentLoaded", live);
})();

// Your time zone: offer the browser's own zone when it differs from the one saved.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("use-browser-zone");
    var input = document.getElementById("timezone-input");
    var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!button || !input || !zone || zone === input.defaultValue) return;
    button.textContent = "Use my browser's zone (" + zone + ")";
    button.hidden = false;
    button.addEventListener("click", function () {
      input.value = zone;
      input.form.requestSubmit();
    });
  });
})();

// CSV import: the upload's progress; then the import's own card polls its progress.
(function () {
  "use strict";
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("import-progress");
    if (!bar || event.target.id !== "import-form" || !event.detail.lengthComputable) return;
    bar.hidden = false;
    var percent = Math.round(100 * event.detail.loaded / event.detail.total);
    bar.value = percent;
    document.getElementById("import-state").textContent =
      percent < 100 ? "Uploading… " + percent + " %" : "Uploaded; starting the import…";
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.target.id !== "import-form") return;
    var state = document.getElementById("import-state");
    if (state) state.textContent = event.detail.successful ? "Uploaded; importing in the background." : "The file was refused; see the message below.";
  });

  // Contacts list: the header box ticks the rows shown; "Select all N matching" ticks them
  // too and sends scope=all, so the server acts on every contact of the filter.
  document.addEventListener("change", function (event) {
    var id = event.target.id;
    if (id !== "select-page" && id !== "select-all-matching") return;
    var on = event.target.checked;
    document.querySelectorAll("#bulk-tags input[name=contact_id]").forEach(function (box) {
      box.checked = on;
    });
    var page = document.getElementById("select-page");
    if (page && id === "select-all-matching") page.checked = on;
    var all = document.getElementById("select-all-matching");
    if (all && id === "select-page" && !on) all.checked = false;
  });
})();
