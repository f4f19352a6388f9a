/* The version switch of a board page (select.lb-version, options valued "<board id>.html"):
   going to another version keeps the reader's view. The view lives in the query string
   (slice, sort, filters: leaderboard.js writes it there as the reader changes it) and the
   hash, so both go along; the other version's page applies whatever of them it has (a
   slice or metric it lacks is ignored, its default used instead). */
(function () {
  "use strict";
  function attach(select) {
    select.addEventListener("change", function () {
      window.location.href = select.value + window.location.search + window.location.hash;
    });
  }
  function start() { document.querySelectorAll("select.lb-version").forEach(attach); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
