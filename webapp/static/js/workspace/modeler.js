/*
 * The process-owner modeler: bpmn-js Modeler (served from /static/vendor), Lotsen's own side
 * panel for the properties of bpmn/README.md, the checker's problems, and the form-spec editor.
 *
 * No inline script (strict CSP): everything comes from data- attributes on #workspace-modeler
 * and from the version's JSON endpoint. Saving posts JSON with the session's CSRF token; the
 * server stores the draft even when the checker finds problems, so nothing typed is lost.
 */
(function () {
  "use strict";

  var root = document.getElementById("workspace-modeler");
  if (!root || typeof window.BpmnJS !== "function") { return; }

  var T = JSON.parse(root.getAttribute("data-i18n") || "{}");
  var lang = root.getAttribute("data-lang") || "sv";
  var csrf = root.getAttribute("data-csrf");
  var saveUrl = root.getAttribute("data-save-url");
  var previewUrl = root.getAttribute("data-preview-url");
  var modelUrl = root.getAttribute("data-model-url");
  var versionId = root.getAttribute("data-version-id") || "";
  var baseId = root.getAttribute("data-base-id") || "";
  var filename = root.getAttribute("data-filename") || "";

  var canvasEl = document.getElementById("modeler-canvas");
  var statusEl = document.getElementById("modeler-status");
  var problemList = document.getElementById("problem-list");
  var problemSection = document.getElementById("problems");
  var problemCount = document.getElementById("problem-count");
  var panel = document.getElementById("element-panel");
  var saveButton = document.getElementById("save-draft");
  var fallback = document.getElementById("modeler-fallback");

  /* Lotsen's properties (bpmn/README.md) and the input that edits each. */
  var PROPS = {
    formKey: "prop-formKey",
    decisionType: "prop-decisionType",
    legalRef: "prop-legalRef",
    deadline: "prop-deadline"
  };

  var modeler = new window.BpmnJS({
    container: canvasEl,
    moddleExtensions: { spiffworkflow: window.LotsenSpiffModdle }
  });
  var modeling = modeler.get("modeling");
  var moddle = modeler.get("moddle");
  var registry = modeler.get("elementRegistry");
  var selection = modeler.get("selection");
  var canvas = modeler.get("canvas");
  var eventBus = modeler.get("eventBus");

  var problems = [];
  var current = null; /* the element shown in the side panel */
  var dirty = false;
  var pickerTimer = null;

  function say(text, kind) {
    statusEl.textContent = text;
    statusEl.className = "modeler-status" + (kind ? " modeler-status--" + kind : "");
  }

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_, k) {
      return values[k] === undefined ? "" : String(values[k]);
    });
  }

  /* --- extension properties ------------------------------------------------------------ */

  function propsElement(bo) {
    var ext = bo.extensionElements;
    if (!ext || !ext.values) { return null; }
    for (var i = 0; i < ext.values.length; i++) {
      if (ext.values[i].$type === "spiffworkflow:Properties") { return ext.values[i]; }
    }
    return null;
  }

  function getProp(bo, key) {
    var props = propsElement(bo);
    var list = (props && props.properties) || [];
    for (var i = 0; i < list.length; i++) {
      if (list[i].name === key) { return list[i].value || ""; }
    }
    return "";
  }

  function setProp(element, key, value) {
    var bo = element.businessObject;
    var ext = bo.extensionElements;
    if (!ext) {
      if (!value) { return; }
      ext = moddle.create("bpmn:ExtensionElements", { values: [] });
      modeling.updateProperties(element, { extensionElements: ext });
    }
    var props = propsElement(bo);
    if (!props) {
      if (!value) { return; }
      props = moddle.create("spiffworkflow:Properties", { properties: [] });
      modeling.updateModdleProperties(element, ext, { values: (ext.values || []).concat([props]) });
    }
    var list = (props.properties || []).slice();
    var found = false;
    var next = [];
    for (var i = 0; i < list.length; i++) {
      if (list[i].name === key) {
        found = true;
        if (value) { next.push(moddle.create("spiffworkflow:Property", { name: key, value: value })); }
      } else {
        next.push(list[i]);
      }
    }
    if (!found && value) {
      next.push(moddle.create("spiffworkflow:Property", { name: key, value: value }));
    }
    modeling.updateModdleProperties(element, props, { properties: next });
  }

  /* --- the side panel ------------------------------------------------------------------ */

  function field(id) { return document.getElementById(id); }

  function showGroup(name, visible) {
    var group = panel.querySelector('[data-group="' + name + '"]');
    if (group) { group.hidden = !visible; }
  }

  function laneOf(element) {
    var bo = element.businessObject;
    var lanes = registry.filter(function (e) { return e.type === "bpmn:Lane"; });
    for (var i = 0; i < lanes.length; i++) {
      var refs = lanes[i].businessObject.flowNodeRef || [];
      if (refs.indexOf(bo) !== -1) { return lanes[i].businessObject.name || ""; }
    }
    return "";
  }

  function setLaneSelect(value) {
    var select = field("prop-lane");
    var unknown = select.querySelector("option[data-unknown]");
    if (unknown) { select.removeChild(unknown); }
    var known = false;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) { known = true; }
    }
    if (!known) {
      /* keep a lane name that is not a role visible, so nothing is silently changed */
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value ? fmt(T.unknown_role, { name: value }) : T.no_role;
      option.setAttribute("data-unknown", "1");
      select.insertBefore(option, select.firstChild);
    }
    select.value = value;
  }

  function showElement(element) {
    current = element;
    if (!element) {
      panel.querySelector("[data-none]").hidden = false;
      panel.querySelector("[data-fields]").hidden = true;
      return;
    }
    var bo = element.businessObject;
    var type = element.type;
    panel.querySelector("[data-none]").hidden = true;
    panel.querySelector("[data-fields]").hidden = false;
    field("prop-id").textContent = bo.id;
    field("prop-type").textContent = type.replace(/^bpmn:/, "");
    field("prop-name").value = bo.name || "";
    var isLane = type === "bpmn:Lane";
    var isUser = type === "bpmn:UserTask";
    var isStart = type === "bpmn:StartEvent";
    showGroup("lane", isLane);
    showGroup("in-lane", !isLane && !!laneOf(element));
    field("prop-in-lane").textContent = isLane ? "" : laneOf(element);
    if (isLane) { setLaneSelect(bo.name || ""); }
    showGroup("formKey", isUser || isStart);
    showGroup("task", isUser);
    Object.keys(PROPS).forEach(function (key) {
      field(PROPS[key]).value = getProp(bo, key);
    });
    var mine = problems.filter(function (p) { return p.element_id === bo.id; });
    var box = field("prop-problems");
    box.textContent = "";
    mine.forEach(function (p) {
      var li = document.createElement("li");
      li.textContent = message(p);
      box.appendChild(li);
    });
    box.hidden = mine.length === 0;
  }

  /* A keyboard way to reach every element: lanes first, then the flow nodes by name. */
  function fillPicker() {
    var picker = field("element-picker");
    while (picker.options.length > 1) { picker.remove(1); }
    var wanted = registry.filter(function (e) {
      return !e.labelTarget && !e.waypoints && e.type !== "bpmn:Process" &&
        e.type !== "bpmn:Collaboration" && e.type !== "label" && e.businessObject && e.businessObject.id;
    });
    wanted.sort(function (a, b) {
      var la = a.type === "bpmn:Lane" ? 0 : 1;
      var lb = b.type === "bpmn:Lane" ? 0 : 1;
      if (la !== lb) { return la - lb; }
      var na = a.businessObject.name || a.id;
      var nb = b.businessObject.name || b.id;
      return na.localeCompare(nb, lang, { numeric: true });
    });
    wanted.forEach(function (e) {
      var option = document.createElement("option");
      option.value = e.id;
      var name = e.businessObject.name;
      option.textContent = (name ? name + " – " : "") + e.id + " (" + e.type.replace(/^bpmn:/, "") + ")";
      picker.appendChild(option);
    });
  }

  function bindPanel() {
    field("element-picker").addEventListener("change", function (event) {
      if (event.target.value) { focusElement(event.target.value); }
    });
    field("prop-name").addEventListener("change", function (event) {
      if (current) { modeling.updateLabel(current, event.target.value); }
    });
    field("prop-lane").addEventListener("change", function (event) {
      if (current && current.type === "bpmn:Lane") {
        modeling.updateProperties(current, { name: event.target.value });
      }
    });
    Object.keys(PROPS).forEach(function (key) {
      field(PROPS[key]).addEventListener("change", function (event) {
        if (current) { setProp(current, key, event.target.value.trim()); }
      });
    });
  }

  /* --- problems ------------------------------------------------------------------------ */

  function message(p) {
    var text = (lang === "en" ? p.message_en : p.message_sv) || p.message_en || p.message_sv || "";
    return text;
  }

  function clearMarkers() {
    registry.getAll().forEach(function (e) { canvas.removeMarker(e, "lotsen-problem"); });
  }

  function focusElement(id) {
    var element = registry.get(id);
    if (!element) { return false; }
    selection.select(element);
    if (typeof canvas.scrollToElement === "function") { canvas.scrollToElement(element); }
    showElement(element);
    field("prop-name").focus();
    return true;
  }

  function showProblems(list, ok) {
    problems = list || [];
    clearMarkers();
    problemList.textContent = "";
    problems.forEach(function (p) {
      var li = document.createElement("li");
      li.className = "problem";
      var text = message(p);
      if (p.element_id && registry.get(p.element_id)) {
        canvas.addMarker(p.element_id, "lotsen-problem");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "link-button problem__element";
        button.setAttribute("data-element-id", p.element_id);
        button.textContent = p.element_id;
        button.addEventListener("click", function () { focusElement(p.element_id); });
        li.appendChild(button);
        li.appendChild(document.createTextNode(": " + text));
      } else {
        li.textContent = (p.element_id ? p.element_id + ": " : "") + text;
      }
      problemList.appendChild(li);
    });
    problemSection.hidden = false;
    problemCount.textContent = ok ? T.check_ok : fmt(T.problem_count, { count: problems.length });
    problemCount.className = ok ? "check-ok" : "check-failed";
    if (current) { showElement(current); }
  }

  /* --- form specs ---------------------------------------------------------------------- */

  var formEditor = window.LotsenFormEditor
    ? window.LotsenFormEditor(document.getElementById("form-editor"), {
      csrf: csrf, previewUrl: previewUrl, T: T, lang: lang,
      onChange: function () { dirty = true; }
    })
    : null;

  /* Fit the diagram; a wide one starts at a readable scale at its left edge instead. */
  function readableZoom(c) {
    c.zoom("fit-viewport");
    var box = c.viewbox();
    if (box.scale < 0.6) {
      var scale = 0.75;
      c.viewbox({
        x: box.inner.x - 20,
        y: box.inner.y - 20,
        width: box.outer.width / scale,
        height: box.outer.height / scale
      });
    }
  }

  /* --- load and save ------------------------------------------------------------------- */

  function save() {
    var forms = formEditor ? formEditor.collect() : { ok: true, forms: {} };
    if (!forms.ok) {
      say(fmt(T.form_json_invalid, { key: forms.key }), "error");
      formEditor.open(forms.key);
      return;
    }
    saveButton.disabled = true;
    say(T.saving);
    modeler.saveXML({ format: true }).then(function (result) {
      return fetch(saveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
        body: JSON.stringify({
          version_id: versionId ? Number(versionId) : null,
          base_version_id: !versionId && baseId ? Number(baseId) : null,
          bpmn: result.xml,
          forms: forms.forms,
          filename: filename || null
        })
      });
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.redirected || type.indexOf("application/json") === -1) {
        /* sent to the login page (or a re-authentication): keep the page, say what to do */
        throw new Error(T.session_lost);
      }
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok || !body) {
          var why = body && (body.message || body.error);
          throw new Error(why || (T.save_failed_status + " " + response.status));
        }
        return body;
      });
    }).then(function (body) {
      dirty = false;
      if (body.version_id && String(body.version_id) !== versionId) {
        versionId = String(body.version_id);
        if (body.modeler_url && window.history && window.history.replaceState) {
          window.history.replaceState(null, "", body.modeler_url);
        }
      }
      var link = document.getElementById("version-link");
      if (link && body.version_url) { link.href = body.version_url; link.hidden = false; }
      showProblems(body.problems, body.ok);
      say(body.ok ? fmt(T.saved_ok, { number: body.number }) : fmt(T.saved_problems, { number: body.number }),
        body.ok ? "ok" : "error");
    }).catch(function (error) {
      say(T.save_failed + " " + error.message, "error");
    }).then(function () {
      saveButton.disabled = false;
    });
  }

  function load() {
    fetch(modelUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (data) {
        if (formEditor) { formEditor.load(data.forms || {}); }
        return modeler.importXML(data.bpmn).then(function (result) {
          readableZoom(canvas);
          fillPicker();
          if (registry.getAll().length < 2) {
            say(T.empty_diagram, "error");
          } else if (result.warnings && result.warnings.length) {
            say(fmt(T.import_warnings, { count: result.warnings.length }));
          } else {
            say(T.loaded);
          }
          if (data.problems && data.problems.length) { showProblems(data.problems, false); }
        });
      })
      .catch(function (error) {
        say(T.load_failed + " " + (error && error.message ? error.message : ""), "error");
      });
  }

  eventBus.on("selection.changed", function (event) {
    var selected = event.newSelection || [];
    showElement(selected.length === 1 ? selected[0] : null);
  });
  eventBus.on("commandStack.changed", function () {
    dirty = true;
    if (current) {
      var still = registry.get(current.id);
      showElement(still || null);
    }
    window.clearTimeout(pickerTimer);
    pickerTimer = window.setTimeout(fillPicker, 300);
  });
  window.addEventListener("beforeunload", function (event) {
    if (dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  if (fallback) { fallback.hidden = true; }
  root.classList.add("modeler--ready");
  bindPanel();
  showElement(null);
  saveButton.hidden = false;
  saveButton.addEventListener("click", save);
  load();

  /* for the browser test and for keyboard users: choose an element by id */
  window.LotsenModeler = { modeler: modeler, select: focusElement };
})();
