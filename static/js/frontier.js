// The efficient frontier of the model portfolios: volatility against expected return.
(function () {
  var node = document.getElementById("frontier-data");
  var canvas = document.getElementById("frontier");
  if (!node || !canvas || typeof Chart === "undefined") return;
  var points = JSON.parse(node.textContent);
  new Chart(canvas, {
    type: "scatter",
    data: { datasets: [{ label: "Model portfolios (level)", data: points, showLine: true, backgroundColor: "#1f6feb", borderColor: "#1f6feb" }] },
    options: {
      maintainAspectRatio: false,
      animation: false,
      plugins: { tooltip: { callbacks: { label: function (c) { return "Level " + c.raw.level + ": " + c.raw.y + "% return, " + c.raw.x + "% volatility"; } } } },
      scales: { x: { title: { display: true, text: "Volatility % a year" } }, y: { title: { display: true, text: "Expected return % a year" } } }
    }
  });
})();
