// The live lists (/ui/cases, /ui/overdue, /ui/queue, /ui/boxes): every few seconds ask the page's own
// fingerprint (/ui/live/cases, /ui/live/overdue, /ui/live/queue, /ui/live/boxes), with the page's own
// query, of what the list shows; when it changed, fetch this page again and swap in its table (#cases
// or #boxes) and the lines about it (#pager, #gateway-time), nothing else. Same origin only (the CSP's script-src 'self' and
// connect-src 'self'); the session cookie goes along, no token is in any URL.
(function () {
  "use strict";
  var table = document.getElementById("cases") || document.getElementById("boxes");
  if (!table) { return; }
  var every = Number(table.getAttribute("data-poll-ms")) || 5000;
  var source = location.pathname.replace(/^\/ui\//, "/ui/live/") + location.search;
  var seen = null;
  function get(url) {
    return fetch(url, {credentials: "same-origin", cache: "no-store", redirect: "error"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    });
  }
  function swap() {
    return get(location.href).then(function (text) {
      var page = new DOMParser().parseFromString(text, "text/html");
      var swapped = ["cases", "pager", "boxes", "gateway-time"].filter(function (id) {
        var fresh = page.getElementById(id), now = document.getElementById(id);
        if (fresh && now) { now.replaceWith(document.importNode(fresh, true)); }
        return fresh && now;
      });
      if (swapped.length) {
        document.body.setAttribute("data-live-updates", String(Number(document.body.getAttribute("data-live-updates") || 0) + 1));
      }
    });
  }
  function poll() {
    get(source).then(function (mark) {
      var changed = seen !== null && mark !== seen;
      seen = mark;
      return changed ? swap() : null;
    }).catch(function () { /* signed out or the gateway away: try again later */ })
      .then(function () { setTimeout(poll, every); });
  }
  poll();
}());
