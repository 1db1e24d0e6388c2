// The customers page's audience editor: a filter builder (conditions per field with the
// operators of the field's type, AND/OR groups, "not") and a text mode, both kept in step
// through the server, which parses every edit and answers the live count with the filter's
// canonical text and JSON tree. No framework, no HTML from data (textContent only).
// Without JavaScript the text box and the form still work.
(function () {
  var root = document.getElementById("builder");
  var input = document.getElementById("filter");
  var out = document.getElementById("live-count");
  var err = document.getElementById("filter-error");
  if (!root || !input || !out) return;
  var url = root.getAttribute("data-count-url");
  // The session's form token, sent with every POST (see the server's console guard).
  var csrfMeta = document.querySelector('meta[name="unico-csrf"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var fields = JSON.parse(root.getAttribute("data-fields") || "[]");
  var types = {};
  fields.forEach(function (f) { types[f.name] = f.type; });
  var initialTree = root.getAttribute("data-tree");

  var HAS = [["exists", "has a value"], ["not_exists", "has no value"]];
  var OPS = {
    string: [["eq", "is"], ["neq", "is not"], ["contains", "contains"], ["not_contains", "does not contain"],
      ["starts_with", "starts with"], ["ends_with", "ends with"], ["in", "is one of"], ["not_in", "is none of"]].concat(HAS),
    number: [["eq", "="], ["neq", "≠"], ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["between", "between"],
      ["in", "is one of"], ["not_in", "is none of"]].concat(HAS),
    datetime: [["within_last", "in the last"], ["not_within_last", "not in the last"], ["before", "before"], ["after", "after"],
      ["between", "between"], ["on", "on"], ["anniversary", "anniversary is today"]].concat(HAS)
  };
  OPS.date = OPS.datetime;
  var UNITS = [["d", "days"], ["w", "weeks"], ["h", "hours"], ["m", "minutes"]];
  var MAX_DEPTH = 4;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function select(options, value, label) {
    var s = el("select");
    if (label) s.setAttribute("aria-label", label);
    options.forEach(function (o) {
      var opt = el("option", "", o[1]);
      opt.value = o[0];
      s.appendChild(opt);
    });
    if (value !== undefined) s.value = value;
    return s;
  }
  function textInput(value, placeholder, type, label) {
    var i = el("input");
    i.type = type || "text";
    i.value = value || "";
    if (placeholder) i.placeholder = placeholder;
    if (label) i.setAttribute("aria-label", label);
    return i;
  }

  // --- the model: groups of conditions, each possibly negated -------------------------
  function group(op) { return { kind: "group", op: op || "and", not: false, items: [] }; }
  // Nothing is filled in for the user: amounts start empty (the boxes show examples as
  // placeholders), so what is counted and saved is only what was typed.
  function bound() { return { k: "ago", date: "", n: "", unit: "d" }; }
  function condition(field) {
    var t = types[field] || "string";
    var c = { kind: "cond", not: false, field: field, op: OPS[t][0][0], text: "", text2: "", b1: bound(), b2: bound(), n: "", unit: "d" };
    if (t === "date" || t === "datetime") c.b2 = { k: "date", date: "", n: "", unit: "d" };
    return c;
  }
  var model = group("and");
  var mode = "builder";

  function number(text) {
    var t = String(text).trim();
    var x = Number(t);
    return t !== "" && isFinite(x) ? x : t;
  }
  function boundJson(b) {
    if (b.k === "date") return b.date.trim() || null;
    if (String(b.n).trim() === "") return null;
    var o = {};
    o[b.k] = String(b.n).trim() + b.unit;
    return o;
  }
  function list(text, numeric) {
    return String(text).split(",").map(function (s) { return s.trim(); })
      .filter(function (s) { return s !== ""; })
      .map(function (s) { return numeric ? number(s) : s; });
  }
  // The JSON form of a condition, or null while it is incomplete.
  function condJson(c) {
    var t = types[c.field] || "string";
    var numeric = t === "number";
    var o = { field: c.field, op: c.op };
    switch (c.op) {
      case "exists": case "not_exists": break;
      case "anniversary":
        if (String(c.n).trim() !== "" && Number(c.n) > 0) o.value = { within_days: number(c.n) };
        break;
      case "in": case "not_in":
        o.value = list(c.text, numeric);
        if (!o.value.length) return null;
        break;
      case "between":
        if (numeric) {
          if (c.text.trim() === "" || c.text2.trim() === "") return null;
          o.value = [number(c.text), number(c.text2)];
        } else {
          var a = boundJson(c.b1), b = boundJson(c.b2);
          if (a === null || b === null) return null;
          o.value = [a, b];
        }
        break;
      case "before": case "after":
        o.value = boundJson(c.b1);
        if (o.value === null) return null;
        break;
      case "within_last": case "not_within_last":
        if (String(c.n).trim() === "") return null;
        o.value = String(c.n).trim() + c.unit;
        break;
      default:
        if (c.text === "") return null;
        o.value = numeric && c.op !== "on" ? number(c.text) : c.text;
    }
    return o;
  }
  function toJson(node) {
    var j;
    if (node.kind === "cond") {
      j = condJson(node);
    } else {
      var items = node.items.map(toJson).filter(function (x) { return x !== null; });
      if (!items.length) return null;
      if (items.length === 1) j = items[0];
      else { j = {}; j[node.op] = items; }
    }
    return j !== null && node.not ? { not: j } : j;
  }

  // The builder's model of a JSON tree from the server, or null if it cannot show it.
  function parseBound(v) {
    if (typeof v === "string") return { k: "date", date: v, n: "", unit: "d" };
    if (v && typeof v === "object") {
      var k = v.ago !== undefined ? "ago" : v.from_now !== undefined ? "from_now" : null;
      var m = k && /^(\d+)([mhdw])$/.exec(String(v[k]));
      if (m) return { k: k, date: "", n: m[1], unit: m[2] };
    }
    return null;
  }
  function fromJson(j) {
    if (!j || typeof j !== "object") return null;
    if (j.not !== undefined) {
      var inner = fromJson(j.not);
      if (inner) inner.not = !inner.not;
      return inner;
    }
    if (Array.isArray(j.and) || Array.isArray(j.or)) {
      var g = group(j.and ? "and" : "or");
      var items = j.and || j.or;
      for (var i = 0; i < items.length; i++) {
        var item = fromJson(items[i]);
        if (!item) return null;
        g.items.push(item);
      }
      return g;
    }
    if (typeof j.field !== "string" || !types[j.field]) return null;
    var c = condition(j.field);
    c.op = j.op;
    var v = j.value;
    switch (j.op) {
      case "exists": case "not_exists": break;
      case "anniversary": c.n = v && v.within_days ? String(v.within_days) : ""; break;
      case "in": case "not_in": c.text = (v || []).join(", "); break;
      case "between":
        if (types[j.field] === "number") { c.text = String(v[0]); c.text2 = String(v[1]); }
        else { c.b1 = parseBound(v[0]); c.b2 = parseBound(v[1]); if (!c.b1 || !c.b2) return null; }
        break;
      case "before": case "after": c.b1 = parseBound(v); if (!c.b1) return null; break;
      case "within_last": case "not_within_last":
        var m = /^(\d+)([mhdw])$/.exec(String(v));
        if (!m) return null;
        c.n = m[1]; c.unit = m[2];
        break;
      default: c.text = v === undefined ? "" : String(v);
    }
    return c;
  }

  // An incomplete condition says so where it is; the count and saving say so too.
  function markIncomplete(row) {
    var incomplete = condJson(row.cond) === null;
    row.classList.toggle("incomplete", incomplete);
    var note = row.querySelector(".incomplete-note");
    if (note) note.hidden = !incomplete;
    return incomplete;
  }
  function incompleteCount() {
    if (mode !== "builder") return 0;
    var n = 0;
    Array.prototype.forEach.call(root.querySelectorAll(".cond"), function (r) { if (r.cond && markIncomplete(r)) n++; });
    return n;
  }
  function showIncomplete() {
    var n = incompleteCount();
    var note = document.getElementById("count-incomplete");
    if (note) {
      note.textContent = n ? "(" + n + (n === 1 ? " incomplete condition is" : " incomplete conditions are") + " not counted)" : "";
      note.hidden = !n;
    }
    return n;
  }

  // --- rendering -------------------------------------------------------------------------
  function boundEditor(b, label) {
    var wrap = el("span", "bound");
    var kind = select([["ago", "ago"], ["from_now", "from now"], ["date", "a date"]], b.k, label + " kind");
    var n = textInput(b.n, "30", "number", label + " amount");
    n.min = "0";
    n.className = "num";
    var unit = select(UNITS, b.unit, label + " unit");
    var date = textInput(b.date, "2024-05-01", b.date.length > 10 ? "text" : "date", label + " date");
    function sync() {
      var rel = b.k !== "date";
      n.hidden = unit.hidden = !rel;
      date.hidden = rel;
    }
    kind.onchange = function () { b.k = kind.value; render(); changed(); };
    n.oninput = function () { b.n = n.value; changed(); };
    unit.onchange = function () { b.unit = unit.value; changed(); };
    date.oninput = date.onchange = function () { b.date = date.value; changed(); };
    [n, unit, date, kind].forEach(function (x) { wrap.appendChild(x); });
    // Relative bounds read "30 days ago"; absolute ones "a date 2024-05-01".
    wrap.insertBefore(kind, b.k === "date" ? date : null);
    sync();
    return wrap;
  }
  function valueEditor(c) {
    var t = types[c.field] || "string";
    var box = el("span", "values");
    function text(key, placeholder, type, label) {
      var i = textInput(c[key], placeholder, type, label);
      i.oninput = function () { c[key] = i.value; changed(); };
      box.appendChild(i);
      return i;
    }
    switch (c.op) {
      case "exists": case "not_exists": break;
      case "anniversary":
        box.appendChild(el("span", "word", "or within"));
        text("n", "0", "number", "within days").className = "num";
        box.appendChild(el("span", "word", "days"));
        break;
      case "in": case "not_in":
        text("text", t === "number" ? "1, 2, 3" : "gold, platinum", "text", "values, comma separated").className = "wide";
        break;
      case "between":
        if (t === "number") {
          text("text", "25", "text", "from").className = "num";
          box.appendChild(el("span", "word", "and"));
          text("text2", "34", "text", "to").className = "num";
        } else {
          box.appendChild(boundEditor(c.b1, "from"));
          box.appendChild(el("span", "word", "and"));
          box.appendChild(boundEditor(c.b2, "to"));
        }
        break;
      case "before": case "after": box.appendChild(boundEditor(c.b1, "when")); break;
      case "within_last": case "not_within_last":
        text("n", "30", "number", "amount").className = "num";
        var unit = select(UNITS, c.unit, "unit");
        unit.onchange = function () { c.unit = unit.value; changed(); };
        box.appendChild(unit);
        break;
      case "on": text("text", "2024-05-01", "date", "date"); break;
      default:
        text("text", t === "number" ? "42" : "value", "text", "value").className = t === "number" ? "num" : "wide";
    }
    return box;
  }
  function notToggle(node) {
    var label = el("label", "not");
    var box = el("input");
    box.type = "checkbox";
    box.checked = node.not;
    box.onchange = function () { node.not = box.checked; changed(); };
    label.appendChild(box);
    label.appendChild(document.createTextNode(" not"));
    return label;
  }
  function renderCondition(c, parent) {
    var row = el("div", "cond");
    row.appendChild(notToggle(c));
    var field = select(fields.map(function (f) { return [f.name, f.name]; }), c.field, "field");
    field.className = "field";
    field.onchange = function () {
      var fresh = condition(field.value);
      fresh.not = c.not;
      parent.items[parent.items.indexOf(c)] = fresh;
      render(); changed();
    };
    var t = types[c.field] || "string";
    var op = select(OPS[t], c.op, "operator");
    op.className = "op";
    op.onchange = function () { c.op = op.value; c.n = ""; render(); changed(); };
    var remove = el("button", "icon", "×");
    remove.type = "button";
    remove.title = "Remove this condition";
    remove.setAttribute("aria-label", "Remove this condition");
    remove.onclick = function () { parent.items.splice(parent.items.indexOf(c), 1); render(); changed(); };
    row.appendChild(field);
    row.appendChild(op);
    row.appendChild(valueEditor(c));
    row.appendChild(remove);
    var note = el("span", "incomplete-note", "Incomplete: not counted until it has a value");
    row.appendChild(note);
    row.cond = c;
    markIncomplete(row);
    return row;
  }
  function renderGroup(g, parent, depth) {
    var box = el("div", depth ? "group nested" : "group");
    var head = el("div", "group-head");
    if (depth) head.appendChild(notToggle(g));
    head.appendChild(el("span", "word", depth ? "Match" : "Customers matching"));
    var op = select([["and", "all"], ["or", "any"]], g.op, "match all or any");
    op.className = "match";
    op.onchange = function () { g.op = op.value; changed(); };
    head.appendChild(op);
    head.appendChild(el("span", "word", "of these conditions"));
    if (parent) {
      var remove = el("button", "icon", "×");
      remove.type = "button";
      remove.title = "Remove this group";
      remove.setAttribute("aria-label", "Remove this group");
      remove.onclick = function () { parent.items.splice(parent.items.indexOf(g), 1); render(); changed(); };
      head.appendChild(remove);
    }
    box.appendChild(head);
    g.items.forEach(function (item) {
      box.appendChild(item.kind === "group" ? renderGroup(item, g, depth + 1) : renderCondition(item, g));
    });
    if (!g.items.length) box.appendChild(el("p", "hint", depth ? "An empty group matches everyone." : "No condition: every customer matches. Add one below."));
    var actions = el("div", "group-actions");
    var add = el("button", "secondary small", "+ Condition");
    add.type = "button";
    add.onclick = function () { g.items.push(condition(pickField())); render(); changed(); };
    actions.appendChild(add);
    if (depth < MAX_DEPTH) {
      var sub = el("button", "secondary small", "+ Group");
      sub.type = "button";
      sub.onclick = function () {
        var inner = group(g.op === "and" ? "or" : "and");
        inner.items.push(condition(pickField()));
        g.items.push(inner);
        render(); changed();
      };
      actions.appendChild(sub);
    }
    box.appendChild(actions);
    return box;
  }
  // New conditions start on the first field of the schema (else customerId).
  function pickField() { return (fields[3] || fields[0]).name; }
  function render() {
    root.textContent = "";
    root.appendChild(renderGroup(model, null, 0));
    showIncomplete();
  }

  // --- the live count and the text form ---------------------------------------------------
  var timer = null, seq = 0, pending = false, afterSettle = null, lastTree = null;
  var exportLink = document.getElementById("export-link");
  function settle() {
    pending = false;
    if (afterSettle) { var f = afterSettle; afterSettle = null; f(); }
  }
  function show(res, fromBuilder) {
    out.setAttribute("aria-busy", "false");
    if (res.ok) {
      out.textContent = res.body.count.toLocaleString();
      out.setAttribute("data-count", res.body.count);
      out.removeAttribute("data-stale");
      err.textContent = "";
      lastTree = res.body.tree;
      if (fromBuilder) input.value = res.body.text;
      showRows();
      if (exportLink) exportLink.href = exportLink.getAttribute("data-base") + "&filter=" + encodeURIComponent(input.value.trim()) +
        "&q=" + encodeURIComponent(searchText());
    } else {
      // The last count no longer answers what is typed: grey it out.
      out.setAttribute("data-stale", "");
      err.textContent = res.body.error ? res.body.error.message : "invalid filter";
    }
  }
  // The table follows the count: once an edit is counted, the rows below are those of the
  // same filter and search (the page's own list, fetched and swapped in), and the address
  // says so, so that reloading or sharing it shows the same audience.
  var rows = document.getElementById("customer-list");
  var rowsSeq = 0;
  function showRows() {
    if (!rows) return;
    var filter = input.value.trim(), q = searchText();
    if (rows.getAttribute("data-filter") === filter && rows.getAttribute("data-q") === q) return;
    var params = new URLSearchParams(location.search);
    params.set("filter", filter);
    params.set("q", q);
    params.delete("cursor");
    params.delete("error");
    var target = location.pathname + "?" + params.toString();
    var mine = ++rowsSeq;
    rows.setAttribute("aria-busy", "true");
    fetch(target, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (mine !== rowsSeq) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("customer-list");
        if (!fresh) return;
        rows.replaceChildren.apply(rows, Array.prototype.map.call(fresh.childNodes, function (n) { return document.importNode(n, true); }));
        rows.setAttribute("data-filter", filter);
        rows.setAttribute("data-q", q);
        rows.removeAttribute("aria-busy");
        history.replaceState(null, "", target);
        var back = document.querySelector('input[name="back"]');
        if (back) back.value = target;
      })
      .catch(function () { if (mine === rowsSeq) rows.removeAttribute("aria-busy"); });
  }
  function request(options, fromBuilder) {
    var mine = ++seq;
    pending = true;
    fetch(url + (options.query || ""), {
      method: options.body ? "POST" : "GET",
      credentials: "same-origin",
      headers: options.body ? { "Content-Type": "application/json", "X-Unico-Csrf": csrf } : {},
      body: options.body
    })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) { if (mine === seq) { show(res, fromBuilder); settle(); } })
      .catch(function () { if (mine === seq) { err.textContent = "cannot reach the server"; settle(); } });
  }
  // The customerId search is part of the audience: the count, the rows, the export and a
  // saved segment all take it with the filter.
  var search = document.querySelector('#filter-form input[name="q"]');
  function searchText() { return search ? search.value.trim() : ""; }
  function countText() {
    request({ query: "?filter=" + encodeURIComponent(input.value.trim()) + "&q=" + encodeURIComponent(searchText()) }, false);
  }
  function countModel() {
    var j = toJson(model);
    if (j === null) input.value = "";
    request({ body: JSON.stringify({ filter: j, q: searchText() }) }, true);
  }
  function changed() {
    pending = true;
    out.setAttribute("aria-busy", "true");
    clearTimeout(timer);
    timer = setTimeout(mode === "builder" ? countModel : countText, 150);
    // Mark incomplete rows without re-rendering (which would steal the focus).
    showIncomplete();
  }
  input.addEventListener("input", changed);
  if (search) search.addEventListener("input", changed);

  // --- modes ------------------------------------------------------------------------------
  var tabs = document.getElementById("filter-tabs");
  var textMode = document.getElementById("text-mode");
  var hint = document.getElementById("text-hint");
  function setMode(m) {
    if (m === "builder") {
      var tree = lastTree === undefined ? null : lastTree;
      var parsed = tree === null ? group("and") : fromJson(tree);
      if (parsed && parsed.kind === "cond") { var g = group("and"); g.items.push(parsed); parsed = g; }
      if (!parsed) { err.textContent = "This filter is too intricate for the builder: edit it as text."; return; }
      model = parsed;
      render();
    }
    mode = m;
    showIncomplete();
    root.hidden = m !== "builder";
    textMode.hidden = m !== "text";
    if (hint) hint.hidden = m !== "text";
    Array.prototype.forEach.call(tabs.querySelectorAll(".tab"), function (t) {
      t.classList.toggle("on", t.getAttribute("data-mode") === m);
    });
    if (m === "text") input.focus();
  }
  Array.prototype.forEach.call(tabs.querySelectorAll(".tab"), function (t) {
    t.addEventListener("click", function () {
      var m = t.getAttribute("data-mode");
      if (m === mode) return;
      if (m === "builder" && err.textContent && input.value.trim()) { err.textContent = "Fix the text first: " + err.textContent; return; }
      setMode(m);
    });
  });
  tabs.hidden = false;
  // data-tree: the filter's JSON tree, "null" for no filter, "" when the text is invalid.
  var start;
  try { start = initialTree ? JSON.parse(initialTree) : undefined; } catch (e) { start = undefined; }
  lastTree = start === undefined ? null : start;
  if (start === undefined || (start !== null && !fromJson(start))) {
    mode = "text";
    setMode("text");
  } else {
    setMode("builder");
  }
  countText();

  // Forms submit what is shown now, once the last edit is parsed.
  var form = document.getElementById("filter-form");
  form.addEventListener("submit", function (e) {
    if (pending) { e.preventDefault(); afterSettle = function () { form.submit(); }; }
  });
  ["save-segment", "update-segment"].forEach(function (id) {
    var f = document.getElementById(id);
    if (!f) return;
    f.addEventListener("submit", function (e) {
      // An incomplete condition is not dropped silently from a saved segment.
      if (showIncomplete()) {
        e.preventDefault();
        err.textContent = "Complete or remove the incomplete conditions before saving: they would not be part of the segment.";
        return;
      }
      function fill() {
        f.querySelector("input[name=filter]").value = input.value;
        f.querySelector("input[name=q]").value = searchText();
      }
      fill();
      if (pending) {
        e.preventDefault();
        afterSettle = function () { fill(); f.submit(); };
      }
    });
  });
})();
