// The CSV upload on the Customer fields page: a real upload progress bar, then the import's
// progress, then its summary and every rejected row (text only: no HTML from data).
(function () {
  var card = document.getElementById("upload");
  if (!card) return;
  var url = card.getAttribute("data-url");
  var csrfMeta = document.querySelector('meta[name="unico-csrf"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var fileInput = document.getElementById("csv-file");
  var mode = document.getElementById("csv-mode");
  var bar = document.getElementById("csv-bar");
  var status = document.getElementById("csv-status");
  var progress = document.getElementById("csv-progress");
  var result = document.getElementById("csv-result");
  var summary = document.getElementById("csv-summary");
  var retry = document.getElementById("csv-retry");
  var table = document.getElementById("csv-errors");
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
  function show(report) {
    progress.hidden = true;
    result.hidden = false;
    var ok = report.state === "succeeded";
    var canRetry = report.state === "failed" && report.mode === "atomic" && report.rows_rejected > 0;
    summary.textContent = ok
      ? "Imported: " + report.rows_written.toLocaleString() + " rows, " + report.created.toLocaleString() + " customers created, " +
        report.updated.toLocaleString() + " updated" + (report.rows_rejected ? ", " + report.rows_rejected + " rows rejected." : ".")
      : canRetry
        ? "Nothing was imported: " + report.rows_rejected.toLocaleString() + (report.rows_rejected === 1 ? " row is" : " rows are") +
          " invalid (below). Fix the file and upload it again, or import the valid rows only."
        : (report.message || "The import failed.");
    summary.className = ok ? "flash ok" : "flash bad";
    var body = table.querySelector("tbody");
    body.textContent = "";
    (report.errors || []).forEach(function (e) {
      var tr = document.createElement("tr");
      cell(tr, e.line); cell(tr, e.column); cell(tr, e.value); cell(tr, e.message);
      body.appendChild(tr);
    });
    table.hidden = !(report.errors && report.errors.length);
    retry.hidden = !canRetry;
  }
  function poll(id) {
    fetch(url + "/" + id, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (report) {
      if (report.state === "running") {
        status.textContent = "Importing… " + report.rows_read.toLocaleString() + " rows read";
        setTimeout(function () { poll(id); }, 300);
      } else {
        show(report);
        // The page is drawn again (fill rates, history) with this import's summary and
        // rejected rows on it, so they stay in view.
        if (report.state === "succeeded") {
          location.assign(location.pathname + "?import=" + encodeURIComponent(id) + "#last-import");
        }
      }
    });
  }
  function upload(chosenMode) {
    var file = fileInput.files[0];
    if (!file) { fileInput.focus(); return; }
    result.hidden = true;
    progress.hidden = false;
    bar.style.width = "0%";
    status.textContent = "Uploading…";
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url + "?mode=" + encodeURIComponent(chosenMode) + "&file=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("Content-Type", "text/csv");
    xhr.setRequestHeader("X-Unico-Csrf", csrf);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.style.width = (100 * e.loaded / e.total).toFixed(1) + "%";
    };
    xhr.onload = function () {
      var reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (e) {}
      if (xhr.status === 202) { bar.style.width = "100%"; poll(reply.id); }
      else { show({ state: "failed", message: reply.error ? reply.error.message : "The upload failed." }); }
    };
    xhr.onerror = function () { show({ state: "failed", message: "Cannot reach the server." }); };
    xhr.send(file);
  }
  document.getElementById("csv-go").addEventListener("click", function () { upload(mode.value); });
  retry.addEventListener("click", function () { upload("skip_invalid"); });
})();

// The customer form: "×" empties a field's box (saved as a removal), undoable until saved.
(function () {
  Array.prototype.forEach.call(document.querySelectorAll("button[data-clear]"), function (b) {
    b.addEventListener("click", function () {
      var input = b.form && b.form.elements.namedItem(b.getAttribute("data-clear"));
      if (!input) return;
      input.value = "";
      // An edit like any other (the unsaved-changes guard counts it).
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
    });
  });
})();

// Forms that ask before they act (deleting): the question is the form's data-confirm. A
// script file, not an inline handler, because the content security policy allows none.
document.addEventListener("submit", function (e) {
  var form = e.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) e.preventDefault();
});

// Selects that filter a page (the timeline's event type, the customer list's page size)
// apply on change; delegated, because the customer list's block is replaced as the filter
// changes.
document.addEventListener("change", function (e) {
  var select = e.target;
  if (select && select.matches && select.matches("select[data-autosubmit]") && select.form) select.form.submit();
});

// The customer form: leaving with unsaved edits asks first (only once a value was changed,
// and not when the form itself is submitted). A refused save shows the first field in error.
(function () {
  var form = document.querySelector("form[data-unsaved-guard]");
  if (!form) return;
  var dirty = false;
  form.addEventListener("input", function () { dirty = true; });
  form.addEventListener("change", function () { dirty = true; });
  form.addEventListener("submit", function () { dirty = false; });
  window.addEventListener("beforeunload", function (e) {
    if (!dirty) return;
    e.preventDefault();
    e.returnValue = "";
  });
  var invalid = form.querySelector("[aria-invalid=true]");
  if (invalid) invalid.focus();
})();

// "Copy" beside a key shown once: copies the box named by data-copy, and says so (or how
// to copy by hand when the browser refuses).
document.addEventListener("click", function (e) {
  var button = e.target && e.target.closest ? e.target.closest("button[data-copy]") : null;
  if (!button) return;
  var box = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById("copy-status");
  if (!box) return;
  function say(ok) {
    if (!status) return;
    status.hidden = false;
    status.className = ok ? "flash ok inline" : "flash bad inline";
    status.textContent = ok ? "Copied to the clipboard." : "The browser did not copy it: select the key and press Ctrl+C (⌘C).";
  }
  function byHand() {
    box.focus();
    box.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (err) { done = false; }
    say(done);
  }
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(box.value).then(function () { say(true); }, byHand);
  } else {
    byHand();
  }
});

// A card whose content is wider than the screen (a wide table on a phone) scrolls
// sideways; it takes the focus so that the keyboard can scroll it too.
(function () {
  function mark() {
    Array.prototype.forEach.call(document.querySelectorAll(".card"), function (card) {
      if (card.scrollWidth > card.clientWidth + 1) card.tabIndex = 0;
      else if (card.getAttribute("tabindex") === "0") card.removeAttribute("tabindex");
    });
  }
  mark();
  window.addEventListener("resize", mark);
})();
