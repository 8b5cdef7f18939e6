/*
 * Form-spec editor beside the diagram: one JSON text per form key, a live preview rendered on
 * the server by the caseworkers' own form builder (forms/builder.py). The text is never
 * rewritten by the editor: invalid JSON or an invalid spec shows the error and keeps the text.
 *
 * window.LotsenFormEditor(section, options) -> {load(forms), collect(), open(key)}
 */
(function () {
  "use strict";

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_, k) {
      return values[k] === undefined ? "" : String(values[k]);
    });
  }

  window.LotsenFormEditor = function (section, options) {
    if (!section) { return null; }
    var T = options.T;
    var select = section.querySelector("#form-key");
    var text = section.querySelector("#form-spec");
    var error = section.querySelector("#form-spec-error");
    var preview = section.querySelector("#form-preview");
    var newKey = section.querySelector("#new-form-key");
    var addButton = section.querySelector("#add-form");
    var texts = {};
    var active = null;
    var timer = null;
    var sequence = 0;

    function showError(message) {
      error.textContent = message || "";
      error.hidden = !message;
      text.setAttribute("aria-invalid", message ? "true" : "false");
    }

    function fillSelect() {
      var keys = Object.keys(texts).sort();
      select.textContent = "";
      keys.forEach(function (key) {
        var option = document.createElement("option");
        option.value = key;
        option.textContent = key;
        select.appendChild(option);
      });
      if (active) { select.value = active; }
    }

    function renderPreview() {
      var raw = text.value;
      var spec;
      try {
        spec = JSON.parse(raw);
      } catch (e) {
        showError(fmt(T.invalid_json, { error: e.message }));
        return;
      }
      var mine = ++sequence;
      fetch(options.previewUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": options.csrf, Accept: "application/json" },
        body: JSON.stringify({ spec: spec })
      }).then(function (response) {
        return response.json();
      }).then(function (body) {
        if (mine !== sequence) { return; }
        if (body.ok) {
          showError("");
          preview.innerHTML = body.html; /* rendered and escaped by the server's templates */
        } else {
          showError(T.invalid_spec + " " + (body.problems || []).join("; "));
        }
      }).catch(function () {
        if (mine === sequence) { showError(T.preview_failed); }
      });
    }

    function open(key) {
      if (!(key in texts)) { return; }
      active = key;
      select.value = key;
      text.value = texts[key];
      showError("");
      preview.textContent = "";
      renderPreview();
    }

    select.addEventListener("change", function () { open(select.value); });
    text.addEventListener("input", function () {
      if (active === null) { return; }
      texts[active] = text.value;
      options.onChange();
      window.clearTimeout(timer);
      timer = window.setTimeout(renderPreview, 500);
    });
    addButton.addEventListener("click", function () {
      var key = (newKey.value || "").trim();
      if (!/^[a-z][a-z0-9_]{0,99}$/.test(key)) {
        showError(T.bad_form_key);
        newKey.focus();
        return;
      }
      if (!(key in texts)) {
        texts[key] = JSON.stringify({
          id: key,
          title: { sv: key, en: key },
          components: []
        }, null, 2);
        options.onChange();
      }
      newKey.value = "";
      fillSelect();
      open(key);
      text.focus();
    });

    section.hidden = false;

    return {
      load: function (forms) {
        texts = {};
        Object.keys(forms).forEach(function (key) {
          texts[key] = JSON.stringify(forms[key], null, 2);
        });
        var keys = Object.keys(texts).sort();
        active = keys.length ? keys[0] : null;
        fillSelect();
        if (active) { open(active); }
      },
      /* every form parsed, or the first key whose text is not JSON */
      collect: function () {
        var out = {};
        var keys = Object.keys(texts);
        for (var i = 0; i < keys.length; i++) {
          try {
            out[keys[i]] = JSON.parse(texts[keys[i]]);
          } catch (e) {
            return { ok: false, key: keys[i] };
          }
        }
        return { ok: true, forms: out };
      },
      open: open
    };
  };
})();
