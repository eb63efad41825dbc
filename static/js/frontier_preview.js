// The target preview's frontier: the ten model portfolios, volatility against expected return,
// with the investor's level drawn as a distinct, larger point (data from #target-frontier-data).
(function () {
  var node = document.getElementById("target-frontier-data");
  var canvas = document.getElementById("target-frontier");
  if (!node || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(node.textContent);
  var label = function (c) { return "Level " + c.raw.level + ": " + c.raw.y + "% return, " + c.raw.x + "% volatility"; };
  new Chart(canvas, {
    type: "scatter",
    data: {
      datasets: [
        { label: "Your level (" + data.investor.level + ")", data: [data.investor], backgroundColor: "#cf222e",
          borderColor: "#cf222e", pointStyle: "rectRot", pointRadius: 9, pointHoverRadius: 11, order: 0 },
        { label: "Model portfolios, levels 1-10", data: data.frontier, showLine: true, backgroundColor: "#8c959f",
          borderColor: "#8c959f", pointRadius: 4, order: 1 }
      ]
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      // order 0 draws the investor's point over the line; the legend shows each point's shape
      plugins: { legend: { labels: { usePointStyle: true } }, tooltip: { callbacks: { label: label } } },
      scales: {
        x: { title: { display: true, text: "Volatility % a year" } },
        y: { title: { display: true, text: "Expected return % a year" } }
      }
    }
  });
})();
