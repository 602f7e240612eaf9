// Draws the dashboard charts from the JSON the page carries (no inline script: the data sits
// in <script type="application/json">, which browsers never execute).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof Chart === "undefined") { return; }
    var d = JSON.parse(source.textContent);
    var palette = ["#0172ad", "#d97706", "#059669", "#7c3aed", "#dc2626", "#0891b2", "#65a30d"];
    var monthly = document.getElementById("chart-monthly");
    if (monthly) {
      new Chart(monthly, {
        data: {
          labels: d.months,
          datasets: [
            { type: "bar", label: d.labels.amount, data: d.amounts, yAxisID: "y",
              backgroundColor: palette[0] },
            { type: "line", label: d.labels.count, data: d.counts, yAxisID: "y1",
              borderColor: palette[1], backgroundColor: palette[1] }
          ]
        },
        options: { responsive: true, animation: false,
          scales: { y: { beginAtZero: true, position: "left" },
                    y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } }
      });
    }
    var types = document.getElementById("chart-types");
    if (types) {
      new Chart(types, {
        type: "doughnut",
        data: { labels: d.types, datasets: [{ data: d.type_amounts, backgroundColor: palette }] },
        options: { responsive: true, animation: false }
      });
    }
    var banks = document.getElementById("chart-banks");
    if (banks) {
      new Chart(banks, {
        type: "bar",
        data: { labels: d.banks,
                datasets: [{ label: d.labels.amount, data: d.bank_amounts, backgroundColor: palette[2] }] },
        options: { indexAxis: "y", responsive: true, animation: false }
      });
    }
    document.documentElement.setAttribute("data-charts", "drawn");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
