/* The SpiffWorkflow extension elements Lotsen's models use, described for bpmn-js (moddle),
 * so the modeler reads, edits and writes them back instead of dropping them.
 * See bpmn/README.md: properties on tasks, message payloads on throw events. */
(function (root) {
  "use strict";
  var bodyType = function (name) {
    return {
      name: name,
      superClass: ["Element"],
      properties: [{ name: "value", type: "String", isBody: true }],
    };
  };
  root.LotsenSpiffModdle = {
    name: "SpiffWorkflow",
    uri: "http://spiffworkflow.org/bpmn/schema/1.0/core",
    prefix: "spiffworkflow",
    xml: { tagAlias: "lowerCase" },
    associations: [],
    types: [
      {
        name: "Properties",
        superClass: ["Element"],
        properties: [{ name: "properties", type: "Property", isMany: true }],
      },
      {
        name: "Property",
        superClass: ["Element"],
        properties: [
          { name: "name", type: "String", isAttr: true },
          { name: "value", type: "String", isAttr: true },
        ],
      },
      bodyType("MessagePayload"),
      bodyType("MessageVariable"),
      bodyType("PreScript"),
      bodyType("PostScript"),
      bodyType("InstructionsForEndUser"),
      bodyType("AllowGuest"),
      bodyType("GuestConfirmation"),
    ],
  };
})(typeof window !== "undefined" ? window : globalThis);
