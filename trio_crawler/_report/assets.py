"""The report page's inline style and script, and the Content-Security-Policy that allows
exactly these two (by their hashes) and nothing else."""

from __future__ import annotations

import base64
import hashlib

from .charts import CLASS_COLOURS

CSS = """
:root{--fg:#1d2430;--muted:#5c6675;--line:#d9dee5;--bg:#f6f7f9;--card:#fff;--accent:#3b5bdb}
*{box-sizing:border-box}
html{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
body{margin:0}
header{background:#1d2430;color:#fff;padding:18px 32px 0}
header h1{margin:0 0 4px;font-size:22px;font-weight:650}
header p{margin:0 0 10px;color:#c5ccd6;font-size:13.5px;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:2px 18px;padding:6px 0 10px;font-size:14px}
nav a{color:#a5c3ff;text-decoration:none}nav a:hover{text-decoration:underline}
main{max-width:1480px;margin:0 auto;padding:18px 32px 48px}
section{margin:0 0 28px}
h2{font-size:18px;margin:0 0 8px;font-weight:650}
h3{font-size:15px;margin:0 0 6px;font-weight:600}
p.lead{margin:0 0 10px;color:var(--muted);max-width:980px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:10px;
margin:0 0 14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .v{font-size:21px;font-weight:650;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .v.text{font-size:15px;line-height:2.1;white-space:normal}
.card .k{font-size:12.5px;color:var(--muted)}
.card.bad .v{color:#c92a2a}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));gap:12px;
align-items:start}
.box{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px}
.box table{width:100%;border-collapse:collapse;font-size:14px}
.box td,.box th{padding:3px 4px;border-bottom:1px solid #eef0f3;text-align:left;
vertical-align:top}
.box td{overflow-wrap:anywhere}
.box td.num{text-align:right;font-variant-numeric:tabular-nums;overflow-wrap:normal}
.box th{font-weight:600;color:var(--muted);padding-right:14px}
.box.kv th{width:1%;white-space:nowrap}
.box.wide{grid-column:span 2}
@media (max-width:700px){.box.wide{grid-column:auto}}
.notes{margin:12px 0 0;padding:10px 16px 10px 34px;background:#fff9db;border:1px solid #ffe8a1;
border-radius:8px;font-size:14px}
.notes li{margin:2px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:10px 12px}
figcaption{font-weight:600;margin:0 0 4px}
svg.chart{width:100%;height:auto;display:block;font-family:inherit}
svg.chart text{fill:#3d4654}
svg.chart .axis-title{fill:#1d2430;font-weight:600}
svg.chart .legend{fill:#1d2430}
svg.chart .empty{fill:var(--muted);font-size:15px}
svg.chart .grid{stroke:#eceff3;stroke-width:1}
svg.chart .axis,svg.chart .tick{stroke:#6b7480;stroke-width:1}
svg.chart .marker{stroke-width:1.5;stroke-dasharray:4 3}
svg.chart .marker-label{font-weight:650}
svg.chart .value{fill:#3d4654}
svg.chart .value.inside{fill:#fff;font-weight:600}
svg.chart rect.bar:hover{opacity:.75}
.tablebox{background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
.tools{display:flex;align-items:center;gap:12px;padding:8px 12px;
border-bottom:1px solid var(--line);
font-size:13.5px;color:var(--muted)}
.tools input{font:inherit;padding:4px 8px;border:1px solid #c3cad3;border-radius:6px;
width:260px;color:var(--fg)}
.scroll{max-height:560px;overflow:auto}
table.data{width:100%;border-collapse:collapse;font-size:13.5px}
table.data th{position:sticky;top:0;background:#eef1f5;text-align:left;font-weight:600;
padding:6px 10px;
border-bottom:1px solid var(--line);white-space:nowrap;z-index:1}
table.data th.num{text-align:right}
table.data th button{font:inherit;font-weight:600;border:0;background:none;padding:0;
cursor:pointer;color:inherit}
table.data th[aria-sort=ascending] button::after{content:" \\25B2";font-size:10px}
table.data th[aria-sort=descending] button::after{content:" \\25BC";font-size:10px}
table.data td{padding:5px 10px;border-bottom:1px solid #eef0f3;vertical-align:top;
unicode-bidi:isolate}
table.data td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.data td.url{overflow-wrap:anywhere;min-width:240px}
table.data tr:hover td{background:#f8f9fb}
table.data ul,table.data ol{margin:0;padding-left:18px}
table.data li{overflow-wrap:anywhere}
a{color:var(--accent)}
q{color:var(--muted)}
.more{color:var(--muted);font-size:12.5px}
.flag{display:inline-block;padding:0 6px;margin:0 3px 2px 0;border-radius:9px;
background:#e7f0ff;
color:#1c4fa8;font-size:12px;white-space:nowrap}
.flag.loop,.flag.too-many-hops{background:#ffe3e3;color:#a61e1e}
.none{padding:14px;color:var(--muted)}
.status{display:inline-block;min-width:34px;padding:0 5px;border-radius:4px;color:#fff;
text-align:center;
font-size:12.5px;font-weight:600}
"""


def _status_css() -> str:
    return "".join(
        f".status.c-{name.replace(' ', '-')}{{background:{colour}}}"
        for name, colour in CLASS_COLOURS.items()
    )


STYLE = CSS + _status_css() + "\n"

SCRIPT = """
(function () {
  "use strict";
  function value(row, i, numeric) {
    var cell = row.cells[i];
    var v = cell ? cell.getAttribute("data-v") : null;
    var text = v === null ? (cell ? cell.textContent : "") : v;
    if (!numeric) { return text.toLowerCase(); }
    var n = parseFloat(text);
    return isNaN(n) ? -Infinity : n;
  }
  function sortBy(table, i, descending) {
    var heads = table.tHead.rows[0].cells;
    var numeric = heads[i].classList.contains("num");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, i, numeric), y = value(b, i, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    heads[i].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = th.textContent;
      button.title = "sort by this column";
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var numeric = th.classList.contains("num");
        sortBy(table, i, current ? current === "ascending" : numeric);
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.getElementById(input.getAttribute("data-count"));
    input.hidden = false;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      var rows = table.tBodies[0].rows, shown = 0;
      for (var i = 0; i < rows.length; i++) {
        var hit = !q || rows[i].textContent.toLowerCase().indexOf(q) >= 0;
        rows[i].hidden = !hit;
        if (hit) { shown++; }
      }
      count.textContent = q ? shown + " of " + rows.length + " rows match" : "";
    });
  });
  document.documentElement.setAttribute("data-js", "ready");
})();
"""


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


CSP = (
    "default-src 'none'; "
    f"style-src '{_hash(STYLE)}'; "
    f"script-src '{_hash(SCRIPT)}'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
