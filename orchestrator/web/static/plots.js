// Plots, drawn with the plotly.js the app serves (/static/vendor/plotly.min.js; no CDN).
// #pareto: accuracy vs cost of a campaign's complete trials, the front joined; hover shows the configuration and
// a click opens the trial. #curves: per-epoch series of one or more trials (the compare page overlays them).
"use strict";
(function () {
  const layoutBase = {margin: {l: 60, r: 20, t: 30, b: 50}, hovermode: "closest", font: {size: 12},
                      paper_bgcolor: "#fff", plot_bgcolor: "#fafafa"};
  const config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"]};

  async function pareto(div) {
    const note = document.getElementById("pareto-note");
    const response = await fetch(div.dataset.src, {credentials: "same-origin"});
    const data = await response.json();
    if (data.error) {
      note.textContent = data.error;
      div.classList.add("empty");
      return;
    }
    // configs[i] holds the values of data.fields; the hover lists them as field=value
    const hover = data.fields.map((f, j) => f + "=%{customdata[" + (j + 1) + "]}").join(" ") +
      " (%{customdata[0]})<br>" + data.xlabel + " %{x:.4g}<br>" + data.ylabel + " %{y:.4g}<extra></extra>";
    const onFront = new Set(data.front);
    const trace = (idx, name, extra) => Object.assign({
      x: idx.map((i) => data.xs[i]), y: idx.map((i) => data.ys[i]),
      customdata: idx.map((i) => [data.keys[i]].concat(data.configs[i])), name: name, type: "scatter",
      hovertemplate: hover,
    }, extra);
    const rest = data.keys.map((_, i) => i).filter((i) => !onFront.has(i));
    Plotly.newPlot(div, [
      trace(rest, "dominated", {mode: "markers", marker: {color: "#9aa5b1", size: 9}}),
      trace(data.front, "Pareto front", {mode: "lines+markers", marker: {color: "#c0392b", size: 11},
                                         line: {color: "#c0392b", shape: "hv"}}),
    ], Object.assign({}, layoutBase, {xaxis: {title: {text: data.xlabel}}, yaxis: {title: {text: data.ylabel}},
                                       legend: {orientation: "h", y: 1.12}}), config);
    div.on("plotly_click", (ev) => {
      const key = ev.points && ev.points[0] && ev.points[0].customdata && ev.points[0].customdata[0];
      if (key) window.location.href = "/trial?key=" + encodeURIComponent(key);
    });
    note.textContent = data.note;
    div.dataset.points = String(data.keys.length);
  }

  function curves(div) {
    const all = JSON.parse(document.getElementById(div.dataset.curvesId).textContent);
    const keys = Object.keys(all);
    const series = Array.from(new Set(keys.flatMap((k) => Object.keys(all[k].series)))).sort();
    for (const name of series) {
      const box = document.createElement("div");
      box.className = "curve";
      box.id = "curve-" + name;
      div.appendChild(box);
      const traces = keys.filter((k) => name in all[k].series).map((k) => ({
        x: all[k].epochs, y: all[k].series[name], name: k, mode: "lines+markers", type: "scatter",
      }));
      // small multiples: no tool bar over their titles; the legend (trial keys) above the plot
      Plotly.newPlot(box, traces, Object.assign({}, layoutBase, {
        title: {text: name, font: {size: 13}, x: 0.02}, height: 280, showlegend: keys.length > 1,
        margin: {l: 60, r: 20, t: keys.length > 1 ? 60 : 30, b: 45},
        xaxis: {title: {text: "epoch"}, dtick: 1}, legend: {orientation: "h", x: 0, y: 1.0, yanchor: "bottom"}}),
        Object.assign({}, config, {displayModeBar: false}));
    }
    div.dataset.series = String(series.length);
  }

  const p = document.getElementById("pareto");
  if (p) pareto(p);
  const c = document.getElementById("curves");
  if (c) curves(c);
  // switching the cost axis redraws in place and keeps the URL in step (a link reproduces the view)
  for (const a of document.querySelectorAll("#pareto-x a[data-x]")) {
    a.addEventListener("click", (ev) => {
      if (!p) return;
      ev.preventDefault();
      const src = new URL(p.dataset.src, window.location.href);
      src.searchParams.set("x", a.dataset.x);
      p.dataset.src = src.pathname + src.search;
      const here = new URL(window.location.href);
      here.searchParams.set("x", a.dataset.x);
      window.history.replaceState(null, "", here.pathname + here.search);
      for (const other of document.querySelectorAll("#pareto-x a")) other.classList.toggle("on", other === a);
      Plotly.purge(p);
      pareto(p);
    });
  }
})();
