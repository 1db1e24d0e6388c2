// The customers page's audience editor: a filter builder (conditions per field with the
// operators of the field's type, AND/OR groups, "not") and a text mode, both kept in step
// through the server, which parses every edit and answers the live count with the filter's
// canonical text and JSON tree. A condition is on a field, or on what the customer did
// (a "behaviour": their events of a type, counted, aggregated or dated). No framework, no
// HTML from data (textContent only).
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
  // Computed fields (aggregates of events) take their type's operators but `anniversary`.
  var computed = {};
  fields.forEach(function (f) { types[f.name] = f.type; if (f.computed) computed[f.name] = true; });
  var initialTree = root.getAttribute("data-tree");
  // The registered event types ({code, name, properties: [{name, type}]}) and the channels
  // every application knows.
  var events = JSON.parse(root.getAttribute("data-events") || "[]");
  var eventsByCode = {};
  events.forEach(function (e) { eventsByCode[e.code] = e; });
  var eventChoices = events.slice()
    .sort(function (a, b) { return a.name.localeCompare(b.name); })
    .map(function (e) { return [e.code, e.name]; });
  var channels = JSON.parse(root.getAttribute("data-channels") || "[]");
  // The channels the application takes subscriptions (consent) for.
  var subscriptionChannels = JSON.parse(root.getAttribute("data-subscription-channels") || "[]");

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
  // What a behaviour measures over the events that count: whether there are any (and how
  // many), a number aggregated over them, or the time of the first or last one.
  var MEASURES = [["did", "did"], ["did_not", "did not"], ["count", "number of"], ["sum", "sum of"],
    ["avg", "average of"], ["min", "minimum of"], ["max", "maximum of"], ["first", "first"], ["last", "last"]];
  var COUNTS = [["gte", "at least"], ["lte", "at most"], ["eq", "exactly"]];
  var WINDOWS = [["ever", "ever"], ["last", "in the last"], ["between", "between"]];
  var AGG_OPS = [["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["eq", "="], ["neq", "≠"], ["between", "between"],
    ["in", "is one of"], ["not_in", "is none of"]];
  var TIME_OPS = [["within_last", "in the last"], ["not_within_last", "not in the last"], ["before", "before"],
    ["after", "after"], ["between", "between"], ["on", "on"]];
  // The property choice that reveals a box to type a property's name.
  var OTHER = "*other";
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
  // Value suggestions: a string field's most frequent values (from the server, once per
  // field and page), offered under its value box as a datalist the browser filters as the
  // user types; each says how many customers hold it.
  var valuesUrl = root.getAttribute("data-values-url");
  var suggestionLists = {};
  function suggestions(field) {
    if (!valuesUrl) return null;
    if (suggestionLists[field]) return suggestionLists[field].id;
    var list = el("datalist");
    list.id = "values-" + Object.keys(suggestionLists).length;
    suggestionLists[field] = list;
    document.body.appendChild(list);
    fetch(valuesUrl + "?field=" + encodeURIComponent(field), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { values: [] }; })
      .then(function (j) {
        (j.values || []).forEach(function (v) {
          var o = el("option");
          o.value = v.value;
          o.label = v.count.toLocaleString() + (v.count === 1 ? " customer" : " customers");
          list.appendChild(o);
        });
      })
      .catch(function () {});
    return list.id;
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
  function dateBound() { return { k: "date", date: "", n: "", unit: "d" }; }
  // A test on a value of type t: the operator and its boxes (a field's condition, a
  // property's, or the measure of a behaviour).
  function blankTest(t, op) {
    var x = { op: op || OPS[t][0][0], text: "", text2: "", b1: bound(), b2: bound(), n: "", unit: "d" };
    if (t === "date" || t === "datetime") x.b2 = dateBound();
    return x;
  }
  function condition(field) {
    var c = blankTest(types[field] || "string");
    c.kind = "cond";
    c.not = false;
    c.field = field;
    return c;
  }

  // A behaviour starts with no event type: it is incomplete until one is chosen. No
  // channel, no count bound ("at least once") and no window ("ever") are the language's
  // own defaults, not values.
  function behaviour() {
    return { kind: "event", not: false, measure: "did", event: "", channel: "", prop: "", propCustom: false,
      countOp: "gte", countN: "", win: "ever", winN: "", winUnit: "d", w1: dateBound(), w2: dateBound(),
      wheres: [], test: null };
  }
  // "is [not] subscribed to email": {"subscribed": "email"}, the not by the row's own choice.
  function consent(channel) {
    return { kind: "consent", not: false, channel: channel === undefined ? (subscriptionChannels[0] || "") : channel };
  }
  function isOccurrence(m) { return m === "did" || m === "did_not"; }
  function isTime(m) { return m === "first" || m === "last"; }
  function needsProperty(m) { return m === "sum" || m === "avg" || m === "min" || m === "max"; }
  function measureType(m) { return isTime(m) ? "datetime" : "number"; }
  function measureOps(m) { return isTime(m) ? TIME_OPS : AGG_OPS; }
  function propsOf(code) { return eventsByCode[code] ? eventsByCode[code].properties : []; }
  function declaredProp(code, name) {
    return propsOf(code).filter(function (p) { return p.name === name; })[0] || null;
  }
  function numberProps(code) {
    return propsOf(code).filter(function (p) { return p.type === "number"; }).map(function (p) { return p.name; });
  }
  // A property condition: on the event type's first declared property, else on one whose
  // name is to be typed.
  function whereItem(code) {
    var p = propsOf(code)[0];
    return whereOn(p ? p.name : "", !p, p ? p.type : "number");
  }
  function whereOn(name, custom, type) {
    var w = blankTest(type, wherePropOps(custom, type)[0][0]);
    w.prop = name;
    w.custom = custom;
    w.type = type;
    return w;
  }
  // A property whose type is not declared cannot be tested for presence (the server
  // would not know which values are its own).
  function fieldOps(field) {
    var ops = OPS[types[field] || "string"];
    return computed[field] ? ops.filter(function (o) { return o[0] !== "anniversary"; }) : ops;
  }
  function wherePropOps(custom, type) {
    return custom ? OPS[type].filter(function (o) { return o[0] !== "exists" && o[0] !== "not_exists"; }) : OPS[type];
  }
  function setMeasure(c, m) {
    var was = c.measure;
    c.measure = m;
    if (isOccurrence(m)) c.test = null;
    else if (!c.test || isOccurrence(was) || isTime(was) !== isTime(m)) c.test = blankTest(measureType(m), isTime(m) ? "within_last" : "gt");
    if (needsProperty(m) && !c.prop) {
      var first = numberProps(c.event)[0];
      c.prop = first || "";
      c.propCustom = !first;
    }
  }
  // Another event type: what was chosen among the former's declared properties is kept
  // by name, typed by hand when the new type does not declare it.
  function setEvent(c, code) {
    c.event = code;
    var nums = numberProps(code);
    if (needsProperty(c.measure)) {
      if (c.prop === "" && nums.length) { c.prop = nums[0]; c.propCustom = false; }
      else if (!c.propCustom && nums.indexOf(c.prop) < 0) c.propCustom = true;
    }
    c.wheres = c.wheres.map(function (w) {
      if (w.custom && w.prop === "" && propsOf(code).length) return whereItem(code);
      if (!w.custom && !declaredProp(code, w.prop)) w.custom = true;
      return w;
    });
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
  // The JSON value of test c on a value of type t: undefined when its operator takes none,
  // null while it is incomplete.
  function testValue(c, t) {
    var numeric = t === "number";
    switch (c.op) {
      case "exists": case "not_exists": return undefined;
      case "anniversary":
        return String(c.n).trim() !== "" && Number(c.n) > 0 ? { within_days: number(c.n) } : undefined;
      case "in": case "not_in":
        var values = list(c.text, numeric);
        return values.length ? values : null;
      case "between":
        if (numeric) {
          if (c.text.trim() === "" || c.text2.trim() === "") return null;
          return [number(c.text), number(c.text2)];
        }
        var a = boundJson(c.b1), b = boundJson(c.b2);
        return a === null || b === null ? null : [a, b];
      case "before": case "after": return boundJson(c.b1);
      case "within_last": case "not_within_last":
        return String(c.n).trim() === "" ? null : String(c.n).trim() + c.unit;
      default:
        if (c.text === "") return null;
        return numeric && c.op !== "on" ? number(c.text) : c.text;
    }
  }
  function testJson(o, c, t) {
    var v = testValue(c, t);
    if (v === null) return null;
    o.op = c.op;
    if (v !== undefined) o.value = v;
    return o;
  }
  // The JSON form of a condition, or null while it is incomplete.
  function condJson(c) {
    if (c.kind === "event") return eventJson(c);
    if (c.kind === "consent") return c.channel ? { subscribed: c.channel } : null;
    return testJson({ field: c.field }, c, types[c.field] || "string");
  }
  function eventJson(c) {
    if (!c.event) return null;
    var m = c.measure, o = { event: c.event };
    if (isOccurrence(m)) {
      o.op = m;
      var n = String(c.countN).trim();
      if (n !== "") {
        if (!/^\d+$/.test(n)) return null;
        o.count = {};
        o.count[c.countOp] = Number(n);
      } else if (c.countOp !== "gte") {
        return null;
      }
    } else {
      o.agg = m;
      if (needsProperty(m)) {
        if (!String(c.prop).trim()) return null;
        o.property = String(c.prop).trim();
      }
    }
    if (c.channel) o.channel = c.channel;
    if (!isTime(m)) {
      if (c.win === "last") {
        var d = String(c.winN).trim();
        if (d === "") return null;
        o.within_last = d + c.winUnit;
      } else if (c.win === "between") {
        var a = boundJson(c.w1), b = boundJson(c.w2);
        if (a === null || b === null) return null;
        o.between = [a, b];
      }
    }
    var wheres = [];
    for (var i = 0; i < c.wheres.length; i++) {
      var w = c.wheres[i], name = String(w.prop).trim();
      var wj = name ? testJson({ field: name }, w, w.type) : null;
      if (wj === null) return null;
      wheres.push(wj);
    }
    if (wheres.length) o.where = wheres.length === 1 ? wheres[0] : wheres;
    if (!isOccurrence(m)) {
      var v = testValue(c.test, measureType(m));
      if (v === null) return null;
      o.op = c.test.op;
      if (v !== undefined) o.value = v;
    }
    return o;
  }
  function toJson(node) {
    var j;
    if (node.kind !== "group") {
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
    if (typeof j.event === "string") return eventFromJson(j);
    if (j.subscribed !== undefined) {
      // Only {"subscribed": "channel"}; a channel the list lacks is shown as it is.
      if (typeof j.subscribed !== "string" || Object.keys(j).length !== 1) return null;
      return consent(j.subscribed);
    }
    if (typeof j.field !== "string" || !types[j.field]) return null;
    var c = condition(j.field);
    return parseTest(c, fieldOps(j.field), types[j.field], j.op, j.value) ? c : null;
  }
  // Fills test c (of type t, operators ops) from a JSON operator and value; false when the
  // builder cannot show them.
  function parseTest(c, ops, t, op, v) {
    if (!ops.some(function (o) { return o[0] === op; })) return false;
    c.op = op;
    switch (op) {
      case "exists": case "not_exists": return true;
      case "anniversary": c.n = v && v.within_days ? String(v.within_days) : ""; return true;
      case "in": case "not_in": c.text = (v || []).join(", "); return true;
      case "between":
        if (!Array.isArray(v) || v.length !== 2) return false;
        if (t === "number") { c.text = String(v[0]); c.text2 = String(v[1]); return true; }
        c.b1 = parseBound(v[0]); c.b2 = parseBound(v[1]);
        return !!(c.b1 && c.b2);
      case "before": case "after": c.b1 = parseBound(v); return !!c.b1;
      case "within_last": case "not_within_last":
        var m = /^(\d+)([mhdw])$/.exec(String(v));
        if (!m) return false;
        c.n = m[1]; c.unit = m[2];
        return true;
      default: c.text = v === undefined ? "" : String(v); return true;
    }
  }
  function has(options, value) { return options.some(function (o) { return o[0] === value; }); }
  function eventFromJson(j) {
    if (!eventsByCode[j.event]) return null;
    var c = behaviour();
    c.event = j.event;
    if (typeof j.channel === "string") c.channel = j.channel;
    if (j.agg === undefined) {
      if (!isOccurrence(j.op)) return null;
      c.measure = j.op;
      if (j.count) {
        var k = Object.keys(j.count)[0];
        if (!has(COUNTS, k)) return null;
        c.countOp = k;
        c.countN = String(j.count[k]);
      }
    } else {
      if (!has(MEASURES, j.agg) || isOccurrence(j.agg)) return null;
      c.measure = j.agg;
      if (typeof j.property === "string") {
        c.prop = j.property;
        c.propCustom = numberProps(j.event).indexOf(j.property) < 0;
      }
      var t = measureType(j.agg);
      c.test = blankTest(t);
      if (!parseTest(c.test, measureOps(j.agg), t, j.op, j.value)) return null;
    }
    if (j.within_last !== undefined) {
      var m = /^(\d+)([mhdw])$/.exec(String(j.within_last));
      if (!m) return null;
      c.win = "last"; c.winN = m[1]; c.winUnit = m[2];
    } else if (j.between !== undefined) {
      if (!Array.isArray(j.between) || j.between.length !== 2) return null;
      c.w1 = parseBound(j.between[0]); c.w2 = parseBound(j.between[1]);
      if (!c.w1 || !c.w2) return null;
      c.win = "between";
    }
    var wheres = j.where === undefined ? [] : Array.isArray(j.where) ? j.where : [j.where];
    for (var i = 0; i < wheres.length; i++) {
      var w = wheres[i];
      if (!w || typeof w.field !== "string") return null;
      var declared = declaredProp(j.event, w.field);
      var type = declared ? declared.type : impliedType(w);
      var item = whereOn(w.field, !declared, type);
      if (!parseTest(item, wherePropOps(!declared, type), type, w.op, w.value)) return null;
      c.wheres.push(item);
    }
    return c;
  }
  // The type the server gives a property its event type does not declare: the
  // operator's, else the value's.
  function impliedType(w) {
    if (["gt", "gte", "lt", "lte", "between"].indexOf(w.op) >= 0) return "number";
    var v = Array.isArray(w.value) ? w.value[0] : w.value;
    return typeof v === "number" ? "number" : "string";
  }

  // An incomplete condition says so where it is; the count and saving say so too.
  function markIncomplete(row) {
    var c = row.cond;
    var incomplete = condJson(c) === null;
    row.classList.toggle("incomplete", incomplete);
    var note = row.querySelector(".incomplete-note");
    if (note) {
      note.hidden = !incomplete;
      if (c.kind === "consent") {
        note.textContent = "Incomplete: not counted until a channel is chosen";
      } else if (c.kind === "event") {
        note.textContent = c.event ? "Incomplete: not counted until the empty boxes are filled in" :
          "Incomplete: not counted until an event is chosen";
      }
    }
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
  // The boxes of test c on a value of type t; their labels start with prefix, if any
  // ("property value").
  function valueEditor(c, t, prefix) {
    var box = el("span", "values");
    function name(label) { return prefix ? prefix + " " + label : label; }
    function text(key, placeholder, type, label) {
      var i = textInput(c[key], placeholder, type, name(label));
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
          box.appendChild(boundEditor(c.b1, name("from")));
          box.appendChild(el("span", "word", "and"));
          box.appendChild(boundEditor(c.b2, name("to")));
        }
        break;
      case "before": case "after": box.appendChild(boundEditor(c.b1, name("when"))); break;
      case "within_last": case "not_within_last":
        text("n", "30", "number", "amount").className = "num";
        var unit = select(UNITS, c.unit, name("unit"));
        unit.onchange = function () { c.unit = unit.value; changed(); };
        box.appendChild(unit);
        break;
      case "on": text("text", "2024-05-01", "date", "date"); break;
      default:
        var v = text("text", t === "number" ? "42" : "value", "text", "value");
        v.className = t === "number" ? "num" : "wide";
        // A field's own values are suggested (not a property's: events hold those).
        if (t === "string" && !prefix && c.field && !computed[c.field]) {
          var listId = suggestions(c.field);
          if (listId) v.setAttribute("list", listId);
        }
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
    var op = select(fieldOps(c.field), c.op, "operator");
    op.className = "op";
    op.onchange = function () { c.op = op.value; c.n = ""; render(); changed(); };
    var remove = el("button", "icon", "×");
    remove.type = "button";
    remove.title = "Remove this condition";
    remove.setAttribute("aria-label", "Remove this condition");
    remove.onclick = function () { parent.items.splice(parent.items.indexOf(c), 1); render(); changed(); };
    row.appendChild(field);
    row.appendChild(op);
    row.appendChild(valueEditor(c, t));
    row.appendChild(remove);
    var note = el("span", "incomplete-note", "Incomplete: not counted until it has a value");
    row.appendChild(note);
    row.cond = c;
    markIncomplete(row);
    return row;
  }
  // Consent reads as a sentence: "is | is not" "subscribed to" "email".
  function renderConsent(c, parent) {
    var row = el("div", "cond consent");
    var is = select([["is", "is"], ["not", "is not"]], c.not ? "not" : "is", "is or is not");
    is.className = "consent-is";
    is.onchange = function () { c.not = is.value === "not"; changed(); };
    row.appendChild(is);
    row.appendChild(el("span", "word", "subscribed to"));
    var known = subscriptionChannels.slice();
    if (c.channel && known.indexOf(c.channel) < 0) known.push(c.channel);
    var channel = select([["", "choose a channel…"]].concat(known.map(function (k) { return [k, k]; })), c.channel, "subscription channel");
    channel.className = "consent-channel";
    channel.onchange = function () { c.channel = channel.value; render(); changed(); };
    row.appendChild(channel);
    var remove = el("button", "icon", "×");
    remove.type = "button";
    remove.title = "Remove this condition";
    remove.setAttribute("aria-label", "Remove this condition");
    remove.onclick = function () { parent.items.splice(parent.items.indexOf(c), 1); render(); changed(); };
    row.appendChild(remove);
    row.appendChild(el("span", "incomplete-note", "Incomplete: not counted until a channel is chosen"));
    row.cond = c;
    markIncomplete(row);
    return row;
  }
  // A behaviour reads as a sentence: "did | Purchase | on any channel | at least 2 times |
  // in the last 30 days", "sum of | amount | of | Purchase | … | > | 500", "last | App open
  // | before | 30 days ago"; property conditions follow on their own lines.
  function renderEvent(c, parent) {
    var row = el("div", "cond event");
    row.appendChild(notToggle(c));
    var m = c.measure;
    var measure = select(MEASURES, m, "what they did");
    measure.className = "measure";
    measure.onchange = function () { setMeasure(c, measure.value); render(); changed(); };
    row.appendChild(measure);
    if (needsProperty(m)) {
      row.appendChild(aggregatedProperty(c));
      row.appendChild(el("span", "word", "of"));
    }
    var ev = select([["", "choose an event…"]].concat(eventChoices), c.event, "event type");
    ev.className = "event";
    ev.onchange = function () { setEvent(c, ev.value); render(); changed(); };
    row.appendChild(ev);
    var known = channels.slice();
    if (c.channel && known.indexOf(c.channel) < 0) known.push(c.channel);
    var channel = select([["", "on any channel"]].concat(known.map(function (k) { return [k, "on " + k]; })), c.channel, "channel");
    channel.className = "channel-pick";
    channel.onchange = function () { c.channel = channel.value; changed(); };
    row.appendChild(channel);
    if (isOccurrence(m)) row.appendChild(countEditor(c));
    // The time of the first or last event is the test itself: no window.
    if (!isTime(m)) row.appendChild(windowEditor(c));
    if (!isOccurrence(m)) {
      var op = select(measureOps(m), c.test.op, "comparison");
      op.className = "op";
      op.onchange = function () { c.test.op = op.value; c.test.n = ""; render(); changed(); };
      row.appendChild(op);
      row.appendChild(valueEditor(c.test, measureType(m)));
    }
    row.appendChild(removeButton("Remove this condition", function () { parent.items.splice(parent.items.indexOf(c), 1); }));
    row.appendChild(wheresEditor(c));
    row.appendChild(el("span", "incomplete-note"));
    row.cond = c;
    markIncomplete(row);
    return row;
  }
  function removeButton(label, remove) {
    var b = el("button", "icon", "×");
    b.type = "button";
    b.title = label;
    b.setAttribute("aria-label", label);
    b.onclick = function () { remove(); render(); changed(); };
    return b;
  }
  // Sum, average, minimum, maximum: of a declared number property, or one typed by hand.
  function aggregatedProperty(c) {
    var box = el("span", "values prop-pick");
    var nums = numberProps(c.event);
    if (nums.length) {
      var s = select(nums.map(function (n) { return [n, n]; }).concat([[OTHER, "another property…"]]),
        c.propCustom ? OTHER : c.prop, "property");
      s.className = "prop";
      s.onchange = function () {
        c.propCustom = s.value === OTHER;
        c.prop = c.propCustom ? "" : s.value;
        render(); changed();
      };
      box.appendChild(s);
    }
    if (c.propCustom || !nums.length) {
      var i = textInput(c.prop, "amount", "text", "property name");
      i.className = "name";
      i.oninput = function () { c.prop = i.value; changed(); };
      box.appendChild(i);
    }
    return box;
  }
  // "at least | 2 | times": an empty amount with "at least" means at least once.
  function countEditor(c) {
    var box = el("span", "values times");
    var op = select(COUNTS, c.countOp, "how many times");
    var n = textInput(c.countN, "1", "number", "number of times");
    n.min = "0";
    n.step = "1";
    n.className = "num";
    var word = el("span", "word");
    function sync() {
      var v = n.value.trim();
      word.textContent = v === "" || v === "1" ? "time" : "times";
      n.classList.toggle("optional", c.countOp === "gte");
    }
    op.onchange = function () { c.countOp = op.value; sync(); changed(); };
    n.oninput = function () { c.countN = n.value; sync(); changed(); };
    [op, n, word].forEach(function (x) { box.appendChild(x); });
    sync();
    return box;
  }
  // Which events count by their time: ever, in the last N days, or between two times.
  function windowEditor(c) {
    var box = el("span", "values window");
    var kind = select(WINDOWS, c.win, "when");
    kind.onchange = function () { c.win = kind.value; render(); changed(); };
    box.appendChild(kind);
    if (c.win === "last") {
      var n = textInput(c.winN, "30", "number", "how long");
      n.min = "0";
      n.className = "num";
      n.oninput = function () { c.winN = n.value; changed(); };
      var unit = select(UNITS, c.winUnit, "unit of time");
      unit.onchange = function () { c.winUnit = unit.value; changed(); };
      box.appendChild(n);
      box.appendChild(unit);
    } else if (c.win === "between") {
      box.appendChild(boundEditor(c.w1, "window start"));
      box.appendChild(el("span", "word", "and"));
      box.appendChild(boundEditor(c.w2, "window end"));
    }
    return box;
  }
  // "where amount > 100", "and currency is EUR": all must hold on an event for it to count.
  function wheresEditor(c) {
    var box = el("div", "wheres");
    c.wheres.forEach(function (w, i) {
      var line = el("div", "where-row");
      line.appendChild(el("span", "word", i ? "and" : "where"));
      var props = propsOf(c.event);
      if (props.length) {
        var s = select(props.map(function (p) { return [p.name, p.name]; }).concat([[OTHER, "another property…"]]),
          w.custom ? OTHER : w.prop, "property");
        s.className = "prop";
        s.onchange = function () {
          var p = declaredProp(c.event, s.value);
          c.wheres[i] = p ? whereOn(p.name, false, p.type) : whereOn("", true, "number");
          render(); changed();
        };
        line.appendChild(s);
      }
      if (w.custom) {
        var name = textInput(w.prop, "property", "text", "property name");
        name.className = "name";
        name.oninput = function () { w.prop = name.value; changed(); };
        line.appendChild(name);
        var type = select([["number", "as a number"], ["string", "as text"]], w.type, "property type");
        type.onchange = function () { c.wheres[i] = whereOn(w.prop, true, type.value); render(); changed(); };
        line.appendChild(type);
      }
      var op = select(wherePropOps(w.custom, w.type), w.op, "property operator");
      op.className = "op";
      op.onchange = function () { w.op = op.value; w.n = ""; render(); changed(); };
      line.appendChild(op);
      line.appendChild(valueEditor(w, w.type, "property"));
      line.appendChild(removeButton("Remove this property condition", function () { c.wheres.splice(i, 1); }));
      box.appendChild(line);
    });
    var add = el("button", "link small", "+ Property condition");
    add.type = "button";
    add.title = "Count only the events whose properties match";
    add.onclick = function () { c.wheres.push(whereItem(c.event)); render(); changed(); };
    // Properties are the chosen event type's.
    add.hidden = !c.event;
    box.appendChild(add);
    return box;
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
      box.appendChild(item.kind === "group" ? renderGroup(item, g, depth + 1) :
        item.kind === "event" ? renderEvent(item, g) :
        item.kind === "consent" ? renderConsent(item, g) : renderCondition(item, g));
    });
    if (!g.items.length) box.appendChild(el("p", "hint", depth ? "An empty group matches everyone." : "No condition: every customer matches. Add one below."));
    var actions = el("div", "group-actions");
    var add = el("button", "secondary small", "+ Condition");
    add.type = "button";
    add.onclick = function () {
      var fresh = condition(pickField());
      g.items.push(fresh);
      render(); changed();
      focusRow(fresh, "select.field");
    };
    actions.appendChild(add);
    if (events.length) {
      var did = el("button", "secondary small", "+ Behaviour");
      did.type = "button";
      did.title = "A condition on what customers did: their events";
      did.onclick = function () {
        var fresh = behaviour();
        g.items.push(fresh);
        render(); changed();
        // The keyboard goes to the choice that completes it.
        Array.prototype.forEach.call(root.querySelectorAll(".cond.event"), function (r) {
          if (r.cond === fresh) r.querySelector("select.event").focus();
        });
      };
      actions.appendChild(did);
    }
    if (subscriptionChannels.length) {
      var consentButton = el("button", "secondary small", "+ Consent");
      consentButton.type = "button";
      consentButton.title = "A condition on the customers' consent: whether they are subscribed to a channel";
      consentButton.onclick = function () {
        var fresh = consent();
        g.items.push(fresh);
        render(); changed();
        Array.prototype.forEach.call(root.querySelectorAll(".cond.consent"), function (r) {
          if (r.cond === fresh) r.querySelector("select.consent-channel").focus();
        });
      };
      actions.appendChild(consentButton);
    }
    if (depth < MAX_DEPTH) {
      var sub = el("button", "secondary small", "+ Group");
      sub.type = "button";
      sub.onclick = function () {
        var inner = group(g.op === "and" ? "or" : "and");
        var first = condition(pickField());
        inner.items.push(first);
        g.items.push(inner);
        render(); changed();
        focusRow(first, "select.field");
      };
      actions.appendChild(sub);
    }
    box.appendChild(actions);
    return box;
  }
  // New conditions start on the first field of the schema (else customerId).
  function pickField() { return (fields[3] || fields[0]).name; }
  // Re-rendering never rebuilds the control under the focus: the builder is drawn anew
  // off the page, then every node of the page is replaced by the new drawing's except the
  // focused control and its ancestors, which stay in the document (never detached, so
  // never blurred) and take the new drawing's attributes, handlers, options and value.
  // The keyboard and a screen reader stay on the very element the user is on. When its
  // place is gone (its row was removed), the focus goes to the control now at the same
  // position in tab order.
  var CONTROLS = "select, input, button, a[href]";
  function pathTo(node) {
    var path = [];
    while (node && node !== root) {
      path.unshift(Array.prototype.indexOf.call(node.parentNode.children, node));
      node = node.parentNode;
    }
    return node === root ? path : null;
  }
  function sameOptions(a, b) {
    if (a.options.length !== b.options.length) return false;
    for (var i = 0; i < a.options.length; i++) {
      if (a.options[i].value !== b.options[i].value || a.options[i].text !== b.options[i].text) return false;
    }
    return true;
  }
  // `kept` (on the page) becomes `fresh` (drawn off the page) in all but identity.
  function adopt(kept, fresh) {
    Array.prototype.slice.call(kept.attributes).forEach(function (a) {
      if (!fresh.hasAttribute(a.name)) kept.removeAttribute(a.name);
    });
    Array.prototype.forEach.call(fresh.attributes, function (a) {
      if (kept.getAttribute(a.name) !== a.value) kept.setAttribute(a.name, a.value);
    });
    // The new handlers read their own (off-page) control: it is given the kept one's
    // state before each runs.
    ["onchange", "oninput", "onclick", "onkeydown"].forEach(function (h) {
      var handler = fresh[h];
      kept[h] = handler ? function (e) {
        if ("value" in kept) fresh.value = kept.value;
        if (kept.type === "checkbox") fresh.checked = kept.checked;
        return handler.call(fresh, e);
      } : null;
    });
    kept.cond = fresh.cond;
    if (kept.tagName === "SELECT" && !sameOptions(kept, fresh)) {
      kept.replaceChildren.apply(kept, Array.prototype.slice.call(fresh.childNodes));
    }
    if (kept.tagName === "BUTTON") kept.textContent = fresh.textContent;
    if (kept.tagName === "INPUT" || kept.tagName === "SELECT") {
      if (kept.value !== fresh.value) kept.value = fresh.value;
    }
    if (kept.type === "checkbox") kept.checked = fresh.checked;
  }
  // Swaps the page's builder for `drawn`, keeping the nodes on `path` (root's child
  // indices down to the focused control); false, changing nothing, when `drawn` has no
  // node of the same kind on that path.
  function graft(drawn, path) {
    var holder = el("div");
    holder.appendChild(drawn);
    var olds = [root], news = [holder];
    for (var d = 0; d < path.length; d++) {
      var o = olds[d].children[path[d]], f = news[d].children[path[d]];
      if (!o || !f || o.tagName !== f.tagName || o.type !== f.type) return false;
      if (d === path.length - 1 && o.className !== f.className) return false;
      olds.push(o);
      news.push(f);
    }
    for (d = 0; d < path.length; d++) {
      var parent = olds[d], keep = olds[d + 1], twin = news[d + 1], after = false;
      Array.prototype.slice.call(parent.childNodes).forEach(function (n) { if (n !== keep) parent.removeChild(n); });
      Array.prototype.slice.call(news[d].childNodes).forEach(function (n) {
        if (n === twin) { after = true; return; }
        if (after) parent.appendChild(n); else parent.insertBefore(n, keep);
      });
      adopt(keep, twin);
    }
    return true;
  }
  function render() {
    var active = document.activeElement;
    var inside = active && active !== root && root.contains(active);
    var at = inside ? Array.prototype.indexOf.call(root.querySelectorAll(CONTROLS), active) : -1;
    var path = inside ? pathTo(active) : null;
    var drawn = renderGroup(model, null, 0);
    if (!(path && graft(drawn, path))) {
      root.textContent = "";
      root.appendChild(drawn);
      if (inside) {
        var now = root.querySelectorAll(CONTROLS);
        if (now.length) now[Math.min(at, now.length - 1)].focus();
      }
    }
    showIncomplete();
  }
  // After an addition, the keyboard goes to the new condition's first choice.
  function focusRow(item, selector) {
    Array.prototype.forEach.call(root.querySelectorAll(".cond"), function (r) {
      if (r.cond === item) { var c = r.querySelector(selector); if (c) c.focus(); }
    });
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
      var noun = document.getElementById("live-count-noun");
      if (noun) noun.textContent = res.body.count === 1 ? "customer matches" : "customers match";
      out.removeAttribute("data-stale");
      err.textContent = "";
      lastTree = res.body.tree;
      if (fromBuilder) input.value = res.body.text;
      showTotal();
      showRows();
      // Both exports (CSV, and for Excel) download the audience counted.
      [exportLink, document.getElementById("export-excel")].forEach(function (link) {
        if (link) link.href = link.getAttribute("data-base") + "&filter=" + encodeURIComponent(input.value.trim()) +
          "&q=" + encodeURIComponent(searchText());
      });
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
  // "1–50 of 5,000": the total is the live count, once it answers the audience the rows
  // below are of (not while a newer edit's rows are on their way).
  function showTotal() {
    var of = document.getElementById("list-total-of");
    var total = document.getElementById("list-total");
    var known = out.getAttribute("data-count");
    if (!of || !total || known === null || out.hasAttribute("data-stale")) return;
    if (rows && (rows.getAttribute("data-filter") !== input.value.trim() || rows.getAttribute("data-q") !== searchText())) return;
    total.textContent = Number(known).toLocaleString();
    of.hidden = false;
  }
  // Each audience the user settles on is a step of the browser's history, so back and
  // forward return to it: a change counted within a few seconds of the last one replaces
  // that step instead (typing "age > 30" is one step, not five).
  var lastStep = 0, STEP_MS = 2000, shownQuery = location.search;
  function remember(target) {
    var now = Date.now();
    if (now - lastStep < STEP_MS) history.replaceState({ audience: true }, "", target);
    else history.pushState({ audience: true }, "", target);
    lastStep = now;
    shownQuery = location.search;
  }
  // Back or forward to another audience: the page of that address, drawn by the server
  // as on a reload (its filter, search, order and page). A change of the #fragment alone
  // is not one.
  window.addEventListener("popstate", function () {
    if (location.search !== shownQuery) location.reload();
  });
  function showRows() {
    if (!rows) return;
    var filter = input.value.trim(), q = searchText();
    if (rows.getAttribute("data-filter") === filter && rows.getAttribute("data-q") === q) return;
    var params = new URLSearchParams(location.search);
    params.set("filter", filter);
    params.set("q", q);
    // Another audience starts at its first page, in the same order and page size.
    params.delete("cursor");
    params.delete("prev");
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
        showTotal();
        remember(target);
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
      if (parsed && parsed.kind !== "group") { var g = group("and"); g.items.push(parsed); parsed = g; }
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
      function go() {
        if (m === "builder" && err.textContent && input.value.trim()) { err.textContent = "Fix the text first: " + err.textContent; return; }
        setMode(m);
      }
      // The builder shows the tree the server answers for the text: wait for the answer
      // to the last edit (else it would show the text before).
      if (pending) afterSettle = go;
      else go();
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
