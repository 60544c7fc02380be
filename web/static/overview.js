/* The overview's charts, drawn with the vendored Chart.js from the page's JSON data block (#overview-data).
   No inline script or style: this file is the only code the page runs. Each chart's numbers are also a table in the
   page; once a chart is drawn, its table folds away (its <details> closes) and stays one click from view. */
(function () {
  "use strict";

  var COLORS = {
    accepted: "#2f9e6e",
    rejected: "#d64545",
    fresh: "#2f9e6e",
    dueSoon: "#e0a030",
    expired: "#d64545",
    undated: "#9aa5b5",
    bar: "#1f4fd1",
  };
  var TCB_COLORS = {
    UpToDate: "#2f9e6e",
    SWHardeningNeeded: "#e0a030",
    ConfigurationNeeded: "#f0c25a",
    ConfigurationAndSWHardeningNeeded: "#d98c1f",
    OutOfDate: "#d64545",
    OutOfDateConfigurationNeeded: "#b33636",
    unknown: "#9aa5b5",
  };
  var GRID = "#e6e9ef";
  var TEXT = "#5d6878";

  function data() {
    var block = document.getElementById("overview-data");
    return block ? JSON.parse(block.textContent) : null;
  }

  function show(canvas) {
    var holder = canvas.parentElement;
    holder.hidden = false;
    var card = holder.parentElement;
    var numbers = card.querySelector("details.numbers");
    if (numbers) {
      numbers.open = false;
    }
  }

  function axes(stacked, horizontal) {
    var value = { stacked: stacked, beginAtZero: true, grid: { color: GRID }, ticks: { color: TEXT, precision: 0 } };
    var category = { stacked: stacked, grid: { display: false }, ticks: { color: TEXT, autoSkip: true } };
    return horizontal ? { x: value, y: category } : { x: category, y: value };
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return;
    }
    config.options = Object.assign(
      { responsive: true, maintainAspectRatio: false, animation: false },
      config.options || {}
    );
    new window.Chart(canvas, config);
    show(canvas);
  }

  function legend(position) {
    return { position: position || "top", align: "end", labels: { boxWidth: 12, boxHeight: 12, color: TEXT } };
  }

  function main() {
    var d = data();
    if (!d || typeof window.Chart === "undefined") {
      return; // the tables stay open: the page reads without the charts
    }
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;

    draw("chart-timeline", {
      type: "bar",
      data: {
        labels: d.timeline.labels,
        datasets: [
          { label: "Accepted", data: d.timeline.accepted, backgroundColor: COLORS.accepted, borderRadius: 2 },
          { label: "Rejected", data: d.timeline.rejected, backgroundColor: COLORS.rejected, borderRadius: 2 },
        ],
      },
      options: { scales: axes(true, false), plugins: { legend: legend() }, interaction: { mode: "index" } },
    });

    draw("chart-reasons", {
      type: "bar",
      data: {
        labels: d.reasons.labels,
        datasets: [{ label: "Rejections", data: d.reasons.counts, backgroundColor: COLORS.rejected, borderRadius: 2 }],
      },
      options: { indexAxis: "y", scales: axes(false, true), plugins: { legend: { display: false } } },
    });

    draw("chart-tcb", {
      type: "doughnut",
      data: {
        labels: d.tcb.labels,
        datasets: [
          {
            data: d.tcb.counts,
            backgroundColor: d.tcb.labels.map(function (label) {
              return TCB_COLORS[label] || "#7b8aa3";
            }),
            borderWidth: 2,
          },
        ],
      },
      options: { cutout: "62%", plugins: { legend: legend("right") } },
    });

    draw("chart-collateral", {
      type: "bar",
      data: {
        labels: d.collateral.labels,
        datasets: [
          { label: "Fresh", data: d.collateral.fresh, backgroundColor: COLORS.fresh },
          { label: "Due within a day", data: d.collateral.due_soon, backgroundColor: COLORS.dueSoon },
          { label: "Expired", data: d.collateral.expired, backgroundColor: COLORS.expired },
          { label: "Undated", data: d.collateral.undated, backgroundColor: COLORS.undated },
        ],
      },
      options: { indexAxis: "y", scales: axes(true, true), plugins: { legend: legend() } },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", main);
  } else {
    main();
  }
})();
