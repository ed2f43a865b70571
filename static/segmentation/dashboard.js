/* The dashboard's charts, from the JSON the page embeds. No animation: the page is complete once drawn, and
   `window.dashboardReady` (and body[data-dashboard-ready]) tells a test or a screenshot tool that it is. */
(function () {
  "use strict";

  var COLORS = {
    current: "#417690",
    previous: "#a8c4d4",
    issued: "#2e8b57",
    redeemed: "#e0a030",
    used: "#c0392b",
    available: "#79aec8",
  };

  function number(value) {
    var parsed = parseFloat(value);
    return isNaN(parsed) ? 0 : parsed;
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return null;
    }
    config.options = Object.assign(
      { animation: false, responsive: true, maintainAspectRatio: false },
      config.options || {}
    );
    return new window.Chart(canvas, config);
  }

  function main() {
    var source = document.getElementById("dashboard-data");
    var data = source ? JSON.parse(source.textContent) : {};
    var text = Object.assign(
      { as_of: "As of", issued: "Issued", redeemed: "Redeemed", used: "Used", available: "Available" },
      data.text || {}
    );
    var charts = [];
    if (data.locale) {
      // Numbers on axes and tooltips grouped as the tenant reads them (53.000 in es-CL).
      window.Chart.defaults.locale = data.locale;
    }

    if (data.segments && data.segments.labels.length) {
      var datasets = [
        { label: text.as_of + " " + data.segments.as_of, data: data.segments.current, backgroundColor: COLORS.current },
      ];
      if (data.segments.previous) {
        datasets.push({
          label: text.as_of + " " + data.segments.previous_as_of,
          data: data.segments.previous,
          backgroundColor: COLORS.previous,
        });
      }
      charts.push(
        draw("chart-segments", {
          type: "bar",
          data: { labels: data.segments.labels, datasets: datasets },
          options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
        })
      );
    }

    if (data.points) {
      charts.push(
        draw("chart-points", {
          type: "bar",
          data: {
            labels: data.points.labels,
            datasets: [
              { label: text.issued, data: data.points.issued, backgroundColor: COLORS.issued },
              { label: text.redeemed, data: data.points.redeemed, backgroundColor: COLORS.redeemed },
            ],
          },
          options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
        })
      );
    }

    if (data.credit) {
      charts.push(
        draw("chart-credit", {
          type: "doughnut",
          data: {
            labels: [text.used, text.available],
            datasets: [
              {
                data: [number(data.credit.used), number(data.credit.available)],
                backgroundColor: [COLORS.used, COLORS.available],
              },
            ],
          },
        })
      );
    }

    window.dashboardCharts = charts.filter(Boolean);
    window.dashboardReady = true;
    document.body.setAttribute("data-dashboard-ready", "1");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", main);
  } else {
    main();
  }
})();
