// Unico console: the live count of the customers filter. No framework; progressive:
// the page works without it (the filter form submits normally).
(function () {
  var input = document.getElementById("filter");
  var out = document.getElementById("live-count");
  var err = document.getElementById("filter-error");
  if (!input || !out) return;
  var url = input.getAttribute("data-count-url");
  var timer = null, seq = 0;
  function run() {
    var mine = ++seq;
    var text = input.value.trim();
    fetch(url + "?filter=" + encodeURIComponent(text), { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        if (mine !== seq) return;
        if (res.ok) {
          out.textContent = res.body.count.toLocaleString();
          err.textContent = "";
        } else {
          err.textContent = res.body.error ? res.body.error.message : "invalid filter";
        }
      })
      .catch(function () { if (mine === seq) err.textContent = "cannot reach the server"; });
  }
  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 150); });
  run();
})();
