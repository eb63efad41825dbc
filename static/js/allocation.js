// Bar charts of allocation by asset class: current against target, one per account.
(function () {
  var node = document.getElementById("allocation-data");
  if (!node || typeof Chart === "undefined") return;
  JSON.parse(node.textContent).forEach(function (chart) {
    var canvas = document.getElementById(chart.canvas);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: chart.labels,
        datasets: [
          { label: "Current %", data: chart.current, backgroundColor: "#1f6feb" },
          { label: "Target %", data: chart.target, backgroundColor: "#8c959f" }
        ]
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, suggestedMax: Math.ceil((Math.max.apply(null, chart.current.concat(chart.target)) + 5) / 5) * 5, title: { display: true, text: "% of account" } } }
      }
    });
  });
})();
