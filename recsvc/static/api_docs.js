// Swagger UI over the service's own OpenAPI document (its URL is on the mount point, so a prefix is kept).
"use strict";
const mount = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: mount.dataset.spec, domNode: mount, deepLinking: true });
