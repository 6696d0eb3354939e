// The API page of privacy.test.mjs: no inline script, so it runs under a strict CSP.
import * as Ouvert from "/www/ouvert.js";
window.Ouvert = Ouvert;
window.violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.violations.push(`${e.violatedDirective} ${e.blockedURI}`),
);
window.apiReady = true;
