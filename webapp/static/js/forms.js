/*
 * Conditional fields, as progressive enhancement (owned by forms/).
 *
 * A wrapper with data-hide-if="<expr>" is hidden while the expression is true for the current
 * values of the form. Only simple expressions are understood:
 *   key == 'v'   key != 'v'   'v' in key   'v' not in key   not key   key
 *   key in ['a', 'b']   key not in ['a', 'b']   len(key) == 0   len(key) != 0
 * (values: quoted strings, numbers, True, False, None). Anything else leaves the field visible:
 * the server is the truth and judges every condition again on submit. No eval, no storage.
 */
(function () {
  "use strict";

  var NAME = "[A-Za-z][A-Za-z0-9_]*";
  var LITERAL = "'[^'\\\\]*'|\"[^\"\\\\]*\"|-?\\d+(?:\\.\\d+)?|True|False|None";
  var PATTERNS = [
    { re: new RegExp("^(" + NAME + ")\\s*(==|!=)\\s*(" + LITERAL + ")$"), kind: "compare" },
    { re: new RegExp("^(" + LITERAL + ")\\s*(==|!=)\\s*(" + NAME + ")$"), kind: "compare-rev" },
    { re: new RegExp("^(" + LITERAL + ")\\s+(not\\s+in|in)\\s+(" + NAME + ")$"), kind: "in" },
    { re: new RegExp("^(" + NAME + ")\\s+(not\\s+in|in)\\s+[\\[(]\\s*((?:(?:" + LITERAL + ")\\s*,?\\s*)*)[\\])]$"),
      kind: "in-list" },
    { re: new RegExp("^len\\((" + NAME + ")\\)\\s*(==|!=)\\s*(\\d+)$"), kind: "len" },
    { re: new RegExp("^not\\s+(" + NAME + ")$"), kind: "not" },
    { re: new RegExp("^(" + NAME + ")$"), kind: "truthy" }
  ];
  var KEYWORDS = { True: true, False: true, None: true, not: true, and: true, or: true, in: true };

  function literal(text) {
    if (text === "True") { return true; }
    if (text === "False") { return false; }
    if (text === "None") { return null; }
    if (text.charAt(0) === "'" || text.charAt(0) === "\"") { return text.slice(1, -1); }
    return Number(text);
  }

  function truthy(value) {
    if (Array.isArray(value)) { return value.length > 0; }
    return !(value === null || value === false || value === "" || value === 0);
  }

  function equal(a, b) {
    return a === b; /* Python semantics: '5' == 5 is false */
  }

  /* Returns function(values) -> boolean, or null when the expression is not understood. */
  function parse(expr) {
    var text = String(expr || "").trim();
    for (var i = 0; i < PATTERNS.length; i++) {
      var m = PATTERNS[i].re.exec(text);
      if (!m) { continue; }
      var kind = PATTERNS[i].kind;
      if (kind === "compare" || kind === "compare-rev") {
        var key = kind === "compare" ? m[1] : m[3];
        var value = literal(kind === "compare" ? m[3] : m[1]);
        var negate = m[2] === "!=";
        if (KEYWORDS[key]) { return null; }
        return function (values) { return equal(values[key], value) !== negate; };
      }
      if (kind === "in") {
        var needle = literal(m[1]);
        var haystack = m[3];
        var notIn = m[2] !== "in";
        if (KEYWORDS[haystack]) { return null; }
        return function (values) {
          var v = values[haystack];
          var found;
          if (Array.isArray(v)) { found = v.indexOf(needle) !== -1; }
          else if (typeof v === "string" && typeof needle === "string") { found = v.indexOf(needle) !== -1; }
          else { return false; } /* the server fails on this too, and keeps the field visible */
          return found !== notIn;
        };
      }
      if (KEYWORDS[m[1]]) { return null; }
      if (kind === "in-list") {
        var items = [];
        var itemRe = new RegExp(LITERAL, "g");
        var item;
        while ((item = itemRe.exec(m[3])) !== null) { items.push(literal(item[0])); }
        var listKey = m[1];
        var outside = m[2] !== "in";
        return function (values) { return (items.indexOf(values[listKey]) !== -1) !== outside; };
      }
      if (kind === "len") {
        var lenKey = m[1];
        var size = Number(m[3]);
        var differ = m[2] === "!=";
        return function (values) {
          var v = values[lenKey];
          if (!(Array.isArray(v) || typeof v === "string")) { return false; }
          return (v.length === size) !== differ;
        };
      }
      if (kind === "not") { return function (values) { return !truthy(values[m[1]]); }; }
      return function (values) { return truthy(values[m[1]]); };
    }
    return null;
  }

  function readValue(wrapper) {
    var type = wrapper.getAttribute("data-field-type");
    var inputs = wrapper.querySelectorAll("input, select, textarea");
    var i;
    if (type === "checkbox") {
      return inputs.length > 0 && inputs[0].checked === true;
    }
    if (type === "checklist") {
      var list = [];
      for (i = 0; i < inputs.length; i++) { if (inputs[i].checked) { list.push(inputs[i].value); } }
      return list;
    }
    if (type === "radio") {
      for (i = 0; i < inputs.length; i++) { if (inputs[i].checked) { return inputs[i].value; } }
      return null;
    }
    if (inputs.length === 0) { return null; }
    var raw = String(inputs[0].value || "").trim();
    if (raw === "") { return null; }
    if (type === "number") {
      var n = Number(raw.replace(",", "."));
      return isNaN(n) ? null : n;
    }
    return raw;
  }

  function emptyValue(type) {
    if (type === "checklist") { return []; }
    if (type === "checkbox") { return false; }
    return null;
  }

  function update(container, conditionals) {
    var fields = container.querySelectorAll("[data-key]");
    var hidden = {};
    /* Hidden fields count as empty, as on the server; repeat until nothing changes. */
    for (var round = 0; round <= conditionals.length; round++) {
      var values = {};
      for (var i = 0; i < fields.length; i++) {
        var key = fields[i].getAttribute("data-key");
        values[key] = hidden[key] ? emptyValue(fields[i].getAttribute("data-field-type"))
                                  : readValue(fields[i]);
      }
      var next = {};
      var changed = false;
      for (var j = 0; j < conditionals.length; j++) {
        var c = conditionals[j];
        var hide = false;
        try { hide = c.test(values) === true; } catch (e) { hide = false; }
        var k = c.element.getAttribute("data-key");
        if (k) { next[k] = hide; if (!!hidden[k] !== hide) { changed = true; } }
        c.hide = hide;
      }
      hidden = next;
      if (!changed) { break; }
    }
    for (var n = 0; n < conditionals.length; n++) {
      conditionals[n].element.hidden = conditionals[n].hide;
    }
  }

  function enhance(container) {
    var conditionals = [];
    var nodes = container.querySelectorAll("[data-hide-if]");
    for (var i = 0; i < nodes.length; i++) {
      var test = parse(nodes[i].getAttribute("data-hide-if"));
      if (test) { conditionals.push({ element: nodes[i], test: test, hide: false }); }
    }
    if (conditionals.length === 0) { return; }
    var run = function () { update(container, conditionals); };
    container.addEventListener("change", run);
    container.addEventListener("input", run);
    run();
  }

  function init() {
    /* Move focus to the error summary so screen readers announce it first. */
    var summary = document.querySelector("[data-error-summary]");
    if (summary && typeof summary.focus === "function") { summary.focus(); }
    var containers = document.querySelectorAll("[data-conditional-form]");
    for (var i = 0; i < containers.length; i++) {
      enhance(containers[i].closest("form") || containers[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
