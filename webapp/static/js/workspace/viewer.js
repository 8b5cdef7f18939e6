/*
 * Read-only BPMN diagrams (bpmn-js NavigatedViewer from /static/vendor): a version in the
 * workspace, or a case's own version with its done and current tasks marked.
 * Each container: <div data-bpmn-viewer data-url="...json"> answering {bpmn, done, current}.
 * The text list of steps beside it is the alternative; without script only the list shows.
 */
(function () {
  "use strict";

  if (typeof window.BpmnJS !== "function") { return; }

  /* A wide, flat diagram gets a lower box: the height follows the diagram's proportions. */
  function fitHeight(container, canvas) {
    var inner = canvas.viewbox().inner;
    if (inner.width > 0) {
      var wanted = container.clientWidth * (inner.height + 40) / (inner.width + 40);
      container.style.height = Math.max(160, Math.min(576, Math.round(wanted))) + "px";
      canvas.resized();
    }
    canvas.zoom("fit-viewport");
  }

  function show(container) {
    var status = container.parentNode.querySelector("[data-viewer-status]");
    container.hidden = false; /* the viewer measures its container: show it first */
    var viewer = new window.BpmnJS({ container: container });
    fetch(container.getAttribute("data-url"), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (data) {
      return viewer.importXML(data.bpmn).then(function () {
        var canvas = viewer.get("canvas");
        var registry = viewer.get("elementRegistry");
        if (registry.getAll().length < 2) {
          /* nothing but the root: the file's diagram part names no drawable element */
          throw new Error("empty diagram");
        }
        fitHeight(container, canvas);
        (data.done || []).forEach(function (id) {
          if (registry.get(id)) { canvas.addMarker(id, "lotsen-done"); }
        });
        (data.current || []).forEach(function (id) {
          if (registry.get(id)) { canvas.addMarker(id, "lotsen-current"); }
        });
        container.classList.add("ws-viewer--ready");
        if (status) { status.hidden = true; }
      });
    }).catch(function () {
      container.hidden = true;
      if (status) {
        status.textContent = status.getAttribute("data-failed") || "";
        status.hidden = false;
      }
    });
  }

  var containers = document.querySelectorAll("[data-bpmn-viewer]");
  for (var i = 0; i < containers.length; i++) { show(containers[i]); }
})();
