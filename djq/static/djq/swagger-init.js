/* Swagger UI for djq's API, from drf-spectacular-sidecar's files served by djq: no CDN.
   Requests carry the session's CSRF token, so "Try it out" works when signed in. */
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-schema-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    requestInterceptor: function (request) {
      request.headers["X-CSRFToken"] = root.getAttribute("data-csrf-token");
      return request;
    },
  });
})();
